"""NAME_FILE secrets: read, strip one newline, hand NAME to the child, never show the content."""

from __future__ import annotations

import pytest

from spiffctl.config.secrets import resolve_file_secrets
from spiffctl.config.settings import load
from spiffctl.util.errors import ConfigProblems


def test_file_content_becomes_the_variable(tmp_path):
    secret = tmp_path / "db_uri"
    secret.write_text("postgresql://u:filepass@db/x\n\n")
    env, secrets = resolve_file_secrets({"SPIFFWORKFLOW_BACKEND_DATABASE_URI_FILE": str(secret)})
    # exactly one trailing newline is stripped
    assert env == {"SPIFFWORKFLOW_BACKEND_DATABASE_URI": "postgresql://u:filepass@db/x\n"}
    assert secrets == {"postgresql://u:filepass@db/x\n"}


def test_flask_variables_too(tmp_path):
    (tmp_path / "k").write_text("key-material")
    env, _ = resolve_file_secrets({"FLASK_SESSION_SECRET_KEY_FILE": str(tmp_path / "k")})
    assert env == {"FLASK_SESSION_SECRET_KEY": "key-material"}


def test_other_prefixes_and_real_backend_variables_are_left_alone(tmp_path):
    env = {"OTHER_THING_FILE": "/nope", "SPIFFWORKFLOW_BACKEND_LOG_TO_FILE": "true"}
    assert resolve_file_secrets(env) == (env, set())


def test_both_set_is_an_error(tmp_path):
    (tmp_path / "k").write_text("x")
    with pytest.raises(ConfigProblems) as e:
        resolve_file_secrets({"FLASK_SESSION_SECRET_KEY": "y", "FLASK_SESSION_SECRET_KEY_FILE": str(tmp_path / "k")})
    assert e.value.problems == [
        "FLASK_SESSION_SECRET_KEY and FLASK_SESSION_SECRET_KEY_FILE are both set; unset one of them"
    ]
    assert e.value.exit_code == 78


def test_unreadable_files_are_all_reported(tmp_path):
    (tmp_path / "dir").mkdir()
    with pytest.raises(ConfigProblems) as e:
        resolve_file_secrets(
            {
                "SPIFFWORKFLOW_BACKEND_DATABASE_URI_FILE": str(tmp_path / "missing"),
                "FLASK_SESSION_SECRET_KEY_FILE": str(tmp_path / "dir"),
            }
        )
    assert len(e.value.problems) == 2
    assert all("cannot read" in p and "\n" not in p for p in e.value.problems)


def test_empty_file_variable_counts_as_unset():
    assert resolve_file_secrets({"FLASK_SESSION_SECRET_KEY_FILE": ""}) == ({}, set())


def test_file_secrets_are_scrubbed_by_the_settings_redactor(tmp_path):
    (tmp_path / "k").write_text("a-very-secret-key\n")
    s = load({"FLASK_SESSION_SECRET_KEY_FILE": str(tmp_path / "k")}, backend_dir=tmp_path)
    assert s.env["FLASK_SESSION_SECRET_KEY"] == "a-very-secret-key"
    assert "FLASK_SESSION_SECRET_KEY_FILE" not in s.env
    assert s.redactor("driver said: a-very-secret-key") == "driver said: ***"
