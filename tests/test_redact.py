from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from spiffctl.util.redact import Redactor, env_secrets, redact_url, redact_url_in_text


def test_password_in_userinfo():
    assert redact_url("postgresql://user:s3cret@db:5432/x") == "postgresql://user:***@db:5432/x"
    assert redact_url("redis://:s3cret@r:6379/0") == "redis://:***@r:6379/0"
    assert redact_url("postgresql://user@db/x") == "postgresql://user@db/x"


def test_secret_query_parameters():
    url = "postgresql://db/x?sslmode=require&password=s3cret&sslpassword=k3y"
    assert redact_url(url) == "postgresql://db/x?sslmode=require&password=***&sslpassword=***"


def test_urls_inside_text():
    text = "could not reach amqp://guest:guest-pw@rabbit:5672// (refused)"
    assert redact_url_in_text(text) == "could not reach amqp://guest:***@rabbit:5672// (refused)"


def test_env_secrets_by_name_and_inside_urls():
    env = {
        "SPIFFWORKFLOW_BACKEND_DATABASE_PASSWORD": "dbpw1",
        "SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL": "redis://:brokerpw@r/0",
        "FLASK_SESSION_SECRET_KEY": "flask-key",
        "SPIFFWORKFLOW_BACKEND_PORT": "7000",
    }
    assert env_secrets(env) == {"dbpw1", "brokerpw", "flask-key"}


def test_percent_encoded_passwords_are_scrubbed_both_ways():
    scrub = Redactor(env_secrets({"X_URL": "postgresql://u:p%40ss%2Fw@db/x"}))
    assert scrub("auth failed for p@ss/w and p%40ss%2Fw") == "auth failed for *** and ***"


@given(st.text(min_size=4, alphabet=st.characters(blacklist_categories=("Cs",))), st.text())
def test_a_known_secret_never_survives(secret, noise):
    scrub = Redactor([secret])
    assert secret not in scrub(noise + secret + noise)


@given(st.text())
def test_redact_url_never_raises(text):
    redact_url(text)
