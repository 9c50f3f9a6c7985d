"""Every configuration rule of spiffctl.config.settings, against the backend's documented semantics."""

from __future__ import annotations

from pathlib import Path

import pytest

from spiffctl.config.database_uri import DERIVED
from spiffctl.config.settings import load, role_problems
from spiffctl.roles import ROLES, Need

BASE = {
    "FLASK_SESSION_SECRET_KEY": "a-session-key",
    "SPIFFWORKFLOW_BACKEND_BPMN_SPEC_ABSOLUTE_DIR": "/tmp/models",
}


def settings(tmp_path: Path, **env: str):
    return load({**BASE, **env}, backend_dir=tmp_path)


def variables(s) -> dict[str, str]:
    return {p.variable: p.severity for p in s.problems}


def test_default_is_mysql_root_at_localhost_with_a_warning(tmp_path):
    s = settings(tmp_path)
    db = s.endpoint(Need.DATABASE)
    assert db.kind == "mysql"
    assert db.url == "mysql+mysqldb://root:@127.0.0.1/spiffworkflow_backend_local_development"
    assert db.variable == DERIVED
    assert variables(s) == {"SPIFFWORKFLOW_BACKEND_DATABASE_TYPE": "warning"}
    assert s.warnings[0].message == "is not set, so the backend defaults to mysql at root@127.0.0.1"


def test_mysql_password_and_env_name_are_used_in_the_derived_uri(tmp_path):
    s = settings(
        tmp_path,
        SPIFFWORKFLOW_BACKEND_DATABASE_TYPE="mysql",
        SPIFFWORKFLOW_BACKEND_DATABASE_PASSWORD="p/ss:wo#rd?",
        SPIFFWORKFLOW_BACKEND_ENV="prod",
    )
    db = s.endpoint(Need.DATABASE)
    # Built unencoded, exactly as the backend builds it; SQLAlchemy's grammar still reads it whole.
    assert db.url == "mysql+mysqldb://root:p/ss:wo#rd?@127.0.0.1/spiffworkflow_backend_prod"
    assert (db.parts.username, db.parts.password, db.parts.host) == ("root", "p/ss:wo#rd?", "127.0.0.1")
    assert db.display == "mysql+mysqldb://root:***@127.0.0.1/spiffworkflow_backend_prod"
    assert s.problems == ()


@pytest.mark.parametrize("password", ["p@ss", "pa%41ss"])
def test_mysql_password_the_backend_would_misread_is_a_problem(tmp_path, password):
    s = settings(
        tmp_path, SPIFFWORKFLOW_BACKEND_DATABASE_TYPE="mysql", SPIFFWORKFLOW_BACKEND_DATABASE_PASSWORD=password
    )
    [problem] = s.errors
    assert problem.variable == "SPIFFWORKFLOW_BACKEND_DATABASE_PASSWORD"
    assert "unencoded" in problem.message and "SPIFFWORKFLOW_BACKEND_DATABASE_URI" in problem.fix
    assert password not in str(problem)


def test_postgres_derivation(tmp_path):
    s = settings(tmp_path, SPIFFWORKFLOW_BACKEND_DATABASE_TYPE="postgres", SPIFFWORKFLOW_BACKEND_ENV="qa")
    assert s.endpoint(Need.DATABASE).url == (
        "postgresql://spiffworkflow_backend:spiffworkflow_backend@localhost:5432/spiffworkflow_backend_qa"
    )


def test_sqlite_lives_in_the_instance_folder_of_the_backend(tmp_path):
    s = settings(tmp_path, SPIFFWORKFLOW_BACKEND_DATABASE_TYPE="sqlite")
    assert s.endpoint(Need.DATABASE).url == f"sqlite:///{tmp_path}/src/instance/db_local_development.sqlite3"


def test_relative_sqlite_uri_is_relative_to_the_backend_root(tmp_path):
    s = settings(tmp_path, SPIFFWORKFLOW_BACKEND_DATABASE_URI="sqlite:///data/x.sqlite3")
    assert s.endpoint(Need.DATABASE).url == f"sqlite:///{tmp_path}/data/x.sqlite3"
    s = settings(tmp_path, SPIFFWORKFLOW_BACKEND_DATABASE_URI="sqlite:////var/db/x.sqlite3")
    assert s.endpoint(Need.DATABASE).url == "sqlite:////var/db/x.sqlite3"


def test_uri_scheme_decides_the_type(tmp_path):
    s = settings(tmp_path, SPIFFWORKFLOW_BACKEND_DATABASE_URI="postgresql+psycopg2://u:p@db:5432/spiff")
    db = s.endpoint(Need.DATABASE)
    assert (db.kind, db.variable) == ("postgres", "SPIFFWORKFLOW_BACKEND_DATABASE_URI")
    assert s.problems == ()


def test_uri_overrides_a_contradicting_type_with_a_warning(tmp_path):
    s = settings(
        tmp_path,
        SPIFFWORKFLOW_BACKEND_DATABASE_URI="mysql://root:@db/spiff",
        SPIFFWORKFLOW_BACKEND_DATABASE_TYPE="postgres",
    )
    assert s.endpoint(Need.DATABASE).kind == "mysql"
    [warning] = s.warnings
    assert warning.variable == "SPIFFWORKFLOW_BACKEND_DATABASE_TYPE"
    assert warning.message == "says 'postgres' but SPIFFWORKFLOW_BACKEND_DATABASE_URI is mysql; the URI wins"


def test_empty_variables_count_as_unset(tmp_path):
    s = settings(tmp_path, SPIFFWORKFLOW_BACKEND_DATABASE_URI="", SPIFFWORKFLOW_BACKEND_DATABASE_TYPE="")
    db = s.endpoint(Need.DATABASE)
    assert (db.kind, db.variable) == ("mysql", DERIVED)
    [warning] = s.warnings
    assert warning.message == "is not set, so the backend defaults to mysql at root@127.0.0.1"


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("postgres://u:p@db/x", "write postgresql://"),
        ("mariadb://u:p@db/x", "write mysql://"),
        ("oracle://u:p@db/x", "unsupported scheme oracle://"),
        ("just-a-string", "unsupported scheme (none)"),
        ("postgresql://u:p@db:99999/x", "malformed"),
        ("postgresql://u:p@db:port/x", "malformed"),
        ("mysql:///nohost", "has no host"),
    ],
)
def test_bad_database_uris_are_errors_naming_the_variable(tmp_path, uri, fragment):
    s = settings(tmp_path, SPIFFWORKFLOW_BACKEND_DATABASE_URI=uri)
    [problem] = s.errors
    assert problem.variable == "SPIFFWORKFLOW_BACKEND_DATABASE_URI"
    assert fragment in str(problem)
    assert s.endpoint(Need.DATABASE) is None
    assert ":p@" not in str(problem)


def test_unknown_database_type(tmp_path):
    s = settings(tmp_path, SPIFFWORKFLOW_BACKEND_DATABASE_TYPE="oracle")
    [problem] = s.errors
    assert problem.variable == "SPIFFWORKFLOW_BACKEND_DATABASE_TYPE"
    assert "mysql, postgres or sqlite" in problem.fix


def test_a_driver_the_backend_does_not_ship_is_a_warning(tmp_path):
    s = settings(tmp_path, SPIFFWORKFLOW_BACKEND_DATABASE_URI="mysql+pymysql://root:@db/x")
    assert variables(s) == {"SPIFFWORKFLOW_BACKEND_DATABASE_URI": "warning"}


@pytest.mark.parametrize("name", ["FLASK_SESSION_SECRET_KEY", "SPIFFWORKFLOW_BACKEND_BPMN_SPEC_ABSOLUTE_DIR"])
def test_required_variables(tmp_path, name):
    env = {**BASE, "SPIFFWORKFLOW_BACKEND_DATABASE_TYPE": "sqlite"}
    del env[name]
    [problem] = load(env, backend_dir=tmp_path).errors
    assert problem.variable == name


def test_celery_broker_defaults_to_local_redis(tmp_path):
    s = settings(tmp_path, SPIFFWORKFLOW_BACKEND_CELERY_ENABLED="TRUE")
    assert s.celery_enabled
    assert s.endpoint(Need.BROKER).url == "redis://localhost"
    assert s.endpoint(Need.BROKER).kind == "redis"


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("redis://:pw@r:6379/2", "redis"),
        ("rediss://r:6380/0", "redis"),
        ("amqp://u:p@rabbit:5672//", "amqp"),
        ("amqps://u:p@rabbit/vh", "amqp"),
        ("pyamqp://u:p@rabbit", "amqp"),
    ],
)
def test_broker_kinds(tmp_path, url, kind):
    s = settings(tmp_path, SPIFFWORKFLOW_BACKEND_CELERY_ENABLED="true", SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL=url)
    assert s.endpoint(Need.BROKER).kind == kind


def test_broker_is_ignored_without_celery(tmp_path):
    s = settings(tmp_path, SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL="kafka://x")
    assert s.endpoint(Need.BROKER) is None
    assert "SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL" not in variables(s)


def test_unsupported_broker(tmp_path):
    s = settings(
        tmp_path, SPIFFWORKFLOW_BACKEND_CELERY_ENABLED="true", SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL="kafka://x"
    )
    assert variables(s)["SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL"] == "error"


def test_sqs_requires_the_queue_url(tmp_path):
    env = {"SPIFFWORKFLOW_BACKEND_CELERY_ENABLED": "true", "SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL": "sqs://"}
    assert variables(settings(tmp_path, **env))["SPIFFWORKFLOW_BACKEND_CELERY_SQS_URL"] == "error"
    s = settings(tmp_path, **env, SPIFFWORKFLOW_BACKEND_CELERY_SQS_URL="https://sqs.eu-west-1.amazonaws.com/1/q")
    assert s.endpoint(Need.BROKER).kind == "sqs"


def test_s3_result_backend_requires_a_bucket(tmp_path):
    env = {"SPIFFWORKFLOW_BACKEND_CELERY_ENABLED": "true", "SPIFFWORKFLOW_BACKEND_CELERY_RESULT_BACKEND": "s3://"}
    assert variables(settings(tmp_path, **env))["SPIFFWORKFLOW_BACKEND_CELERY_RESULT_S3_BUCKET"] == "error"
    s = settings(tmp_path, **env, SPIFFWORKFLOW_BACKEND_CELERY_RESULT_S3_BUCKET="bucket")
    assert s.errors == [] and s.endpoint(Need.RESULT_BACKEND) is None


def test_database_result_backend_is_checked_as_a_database(tmp_path):
    s = settings(
        tmp_path,
        SPIFFWORKFLOW_BACKEND_CELERY_ENABLED="true",
        SPIFFWORKFLOW_BACKEND_CELERY_RESULT_BACKEND="db+postgresql://u:p@db/results",
    )
    result = s.endpoint(Need.RESULT_BACKEND)
    assert (result.kind, result.url) == ("postgres", "postgresql://u:p@db/results")


@pytest.mark.parametrize(
    "name",
    [
        "SPIFFWORKFLOW_BACKEND_PROCESS_INSTANCE_METADATA_BACKFILL_ENABLED",
        "SPIFFWORKFLOW_BACKEND_EVENT_NOTIFIER_PROCESS_MODEL",
    ],
)
def test_celery_only_features_without_celery(tmp_path, name):
    value = "true" if name.endswith("ENABLED") else "misc/notifier"
    s = settings(tmp_path, **{name: value})
    assert variables(s)[name] == "error"
    assert "SPIFFWORKFLOW_BACKEND_CELERY_ENABLED=true" in str(next(p for p in s.errors if p.variable == name))
    s = settings(tmp_path, **{name: value, "SPIFFWORKFLOW_BACKEND_CELERY_ENABLED": "true"})
    assert name not in variables(s)


@pytest.mark.parametrize("value", ["yes", "1", "on", "False "])
def test_booleans_must_be_true_or_false(tmp_path, value):
    s = settings(tmp_path, SPIFFWORKFLOW_BACKEND_CELERY_ENABLED=value)
    assert variables(s)["SPIFFWORKFLOW_BACKEND_CELERY_ENABLED"] == "error"
    assert not s.celery_enabled


@pytest.mark.parametrize("port", ["0", "70000", "http", "-1"])
def test_port_must_be_a_tcp_port(tmp_path, port):
    s = settings(tmp_path, SPIFFWORKFLOW_BACKEND_PORT=port)
    assert variables(s)["SPIFFWORKFLOW_BACKEND_PORT"] == "error"
    assert s.port is None  # not silently 7000: healthcheck reports the problem instead


def test_port_and_status_path(tmp_path):
    s = settings(tmp_path, SPIFFWORKFLOW_BACKEND_PORT="8000", SPIFFWORKFLOW_BACKEND_WSGI_PATH_PREFIX="/api/")
    assert (s.port, s.status_path) == (8000, "/api/v1.0/status")


def test_renamed_application_root_is_an_error(tmp_path):
    s = settings(tmp_path, SPIFFWORKFLOW_BACKEND_APPLICATION_ROOT="/api")
    assert "SPIFFWORKFLOW_BACKEND_WSGI_PATH_PREFIX" in str(s.errors[-1])
    assert settings(tmp_path, SPIFFWORKFLOW_BACKEND_APPLICATION_ROOT="/").errors == []


def test_worker_needs_celery(tmp_path):
    s = settings(tmp_path)
    [problem] = role_problems(s, ROLES["worker"])
    assert "SPIFFWORKFLOW_BACKEND_CELERY_ENABLED=true for every role" in str(problem)
    assert role_problems(s, ROLES["api"]) == []
    assert role_problems(settings(tmp_path, SPIFFWORKFLOW_BACKEND_CELERY_ENABLED="true"), ROLES["worker"]) == []


def test_secrets_never_appear_in_problems(tmp_path):
    s = settings(
        tmp_path,
        SPIFFWORKFLOW_BACKEND_DATABASE_URI="postgresql://u:hunter2secret@db:bad/x",
        SPIFFWORKFLOW_BACKEND_CELERY_ENABLED="true",
        SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL="redis://:hunter3secret@r:99999/0",
    )
    text = "\n".join(map(str, s.problems))
    assert "hunter2secret" not in text and "hunter3secret" not in text
    assert "***" in text


def test_relative_process_model_dir_must_be_absolute(tmp_path):
    s = settings(tmp_path, SPIFFWORKFLOW_BACKEND_BPMN_SPEC_ABSOLUTE_DIR="process_models")
    [problem] = [p for p in s.errors if p.variable == "SPIFFWORKFLOW_BACKEND_BPMN_SPEC_ABSOLUTE_DIR"]
    assert "relative" in problem.message and "absolute" in problem.fix


def test_a_bad_celery_switch_is_one_problem_for_the_worker_too(tmp_path):
    from spiffctl.config.settings import role_problems
    from spiffctl.roles import ROLES

    s = settings(tmp_path, SPIFFWORKFLOW_BACKEND_CELERY_ENABLED="yes")
    assert [p.variable for p in s.errors] == ["SPIFFWORKFLOW_BACKEND_CELERY_ENABLED"]
    assert role_problems(s, ROLES["worker"]) == []  # not also "nothing for the worker to do"
    assert role_problems(settings(tmp_path), ROLES["worker"])[0].variable == "SPIFFWORKFLOW_BACKEND_CELERY_ENABLED"


def test_endpoints_read_from_files_name_the_file_variable(tmp_path):
    uri = tmp_path / "uri"
    uri.write_text("postgresql://spiff:pw@db:5432/spiff\n")
    password = tmp_path / "password"
    password.write_text("pw\n")
    s = settings(tmp_path, SPIFFWORKFLOW_BACKEND_DATABASE_URI_FILE=str(uri))
    assert s.endpoint(Need.DATABASE).variable == "SPIFFWORKFLOW_BACKEND_DATABASE_URI_FILE"
    s = settings(
        tmp_path,
        SPIFFWORKFLOW_BACKEND_DATABASE_TYPE="mysql",
        SPIFFWORKFLOW_BACKEND_DATABASE_PASSWORD_FILE=str(password),
    )
    assert s.endpoint(Need.DATABASE).variable.startswith("SPIFFWORKFLOW_BACKEND_DATABASE_PASSWORD_FILE (the URI")
