"""Bad input is a configuration error, never an internal one (issue 16, items 6 and 7): one line
naming the variable, exit 78 (doctor: a failed row naming it), no traceback, no secret."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.cli import HTTPStub, Ran, backend_root, base_env, spiffctl

SECRET = "Hunt3rSecret22"
LONG_NAME = "a" * 300
LONG_LABEL = "h" * 70


@pytest.fixture
def backend(tmp_path: Path) -> Path:
    return backend_root(tmp_path / "backend")


def env_for(tmp_path: Path, backend: Path, **extra: str) -> dict[str, str]:
    return base_env(backend, SPIFFCTL_RUN_DIR=str(tmp_path / "run"), **extra)


def run(env: dict[str, str], role: str = "api") -> Ran:
    return spiffctl("run", "--role", role, "--wait-timeout", "1", env=env, timeout=30)


def doctor(env: dict[str, str], role: str) -> Ran:
    return spiffctl("doctor", "--role", role, "--timeout", "1", env=env, timeout=30)


def assert_config_error(r: Ran, variable: str) -> None:
    lines = r.err.splitlines()
    assert r.code == 78, r.err
    assert len(lines) == 1 and lines[0].startswith(f"spiffctl: {variable}"), r.err
    assert SECRET not in r.out + r.err and "Traceback" not in r.err


def assert_failed_row(r: Ran, variable: str) -> None:
    everything = r.out + r.err
    assert r.code == 1, everything
    assert "✗" in r.out and variable in r.out, everything
    assert "internal error" not in everything and "Traceback" not in everything
    assert SECRET not in everything


def test_a_sqlite_url_with_user_password_and_host_is_refused_before_the_disk(tmp_path, backend):
    before = sorted(p.name for p in backend.iterdir())
    r = run(env_for(tmp_path, backend, SPIFFWORKFLOW_BACKEND_DATABASE_URI=f"sqlite://user:{SECRET}@host/db"))
    assert_config_error(r, "SPIFFWORKFLOW_BACKEND_DATABASE_URI")
    assert sorted(p.name for p in backend.iterdir()) == before


@pytest.mark.parametrize("url", [f"sqlite://:{SECRET}@/db", "sqlite://host:5/db", "sqlite://db.sqlite3"])
def test_every_sqlite_authority_is_refused(tmp_path, backend, url):
    assert_config_error(run(env_for(tmp_path, backend, SPIFFWORKFLOW_BACKEND_DATABASE_URI=url)), "SPIFFWORKFLOW")


def test_a_sqlite_lease_url_with_a_password_is_a_failed_row(tmp_path, backend):
    env = env_for(tmp_path, backend, SPIFFCTL_LOCK_URL=f"sqlite://user:{SECRET}@host/db")
    assert_failed_row(doctor(env, "background"), "SPIFFCTL_LOCK_URL")


@pytest.mark.parametrize("path", [f"/tmp/{LONG_NAME}/db.sqlite3", "/tmp/" + "d/" * 2100 + "db.sqlite3"])
def test_an_over_long_sqlite_path_is_one_line(tmp_path, backend, path):
    r = run(env_for(tmp_path, backend, SPIFFWORKFLOW_BACKEND_DATABASE_URI=f"sqlite:///{path}"))
    assert_config_error(r, "SPIFFWORKFLOW_BACKEND_DATABASE_URI")


def test_a_backend_dir_with_a_name_over_255_bytes(tmp_path, backend):
    env = env_for(tmp_path, backend, SPIFFCTL_BACKEND_DIR=str(tmp_path / LONG_NAME))
    assert_config_error(run(env), "--backend-dir (SPIFFCTL_BACKEND_DIR)")


@pytest.mark.parametrize("ttl", ["abc", "-1", "0", "nan", "inf", "1e9", "2"])
def test_every_invalid_lock_ttl_in_doctor_is_a_failed_row(tmp_path, backend, ttl):
    assert_failed_row(doctor(env_for(tmp_path, backend, SPIFFCTL_LOCK_TTL=ttl), "background"), "SPIFFCTL_LOCK_TTL")


def test_a_host_label_over_63_characters(tmp_path, backend):
    env = env_for(tmp_path, backend, SPIFFCTL_LOCK_URL=f"redis://:{SECRET}@{LONG_LABEL}.example:6379/0")
    assert_failed_row(doctor(env, "background"), "SPIFFCTL_LOCK_URL")
    assert_config_error(run(env, "background"), "SPIFFCTL_LOCK_URL")


def test_a_database_host_label_over_63_characters(tmp_path, backend):
    env = env_for(
        tmp_path,
        backend,
        SPIFFWORKFLOW_BACKEND_DATABASE_URI=f"postgresql://spiff:{SECRET}@{LONG_LABEL}:5432/spiff",
    )
    assert_config_error(run(env), "SPIFFWORKFLOW_BACKEND_DATABASE_URI")


def test_a_leading_space_in_the_sqs_queue_url(tmp_path, backend):
    env = env_for(
        tmp_path,
        backend,
        SPIFFWORKFLOW_BACKEND_CELERY_ENABLED="true",
        SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL="sqs://",
        SPIFFWORKFLOW_BACKEND_CELERY_SQS_URL=" https://sqs.eu-west-1.amazonaws.com/123456789012/spiff",
        SPIFFCTL_LOCK="off",
    )
    assert_config_error(run(env, "worker"), "SPIFFWORKFLOW_BACKEND_CELERY_SQS_URL")


@pytest.mark.parametrize("command", ["run", "doctor"])
def test_a_fifo_as_a_file_secret_is_refused_at_once(tmp_path, backend, command):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    env = env_for(tmp_path, backend, FLASK_SESSION_SECRET_KEY_FILE=str(fifo))
    del env["FLASK_SESSION_SECRET_KEY"]
    # Today's main blocks in open() for a writer that never comes: the subprocess timeout fails it.
    r = run(env) if command == "run" else doctor(env, "api")
    assert_config_error(r, "FLASK_SESSION_SECRET_KEY_FILE")
    assert "not a regular file" in r.err


def test_a_file_secret_over_64_kib_is_refused(tmp_path, backend):
    big = tmp_path / "big"
    big.write_text("k" * (64 * 1024 + 1))
    env = env_for(tmp_path, backend, FLASK_SESSION_SECRET_KEY_FILE=str(big))
    del env["FLASK_SESSION_SECRET_KEY"]
    assert_config_error(run(env), "FLASK_SESSION_SECRET_KEY_FILE")


@pytest.mark.parametrize("variable", ["SPIFFCTL_LOCK_URL", "SPIFFWORKFLOW_BACKEND_CONNECTOR_PROXY_URL"])
def test_a_url_variable_holding_a_non_url_is_described_never_echoed(tmp_path, backend, variable):
    env = env_for(tmp_path, backend, **{variable: SECRET})
    r = doctor(env, "all")
    assert variable in r.out and "characters without scheme://" in r.out, r.out
    assert SECRET not in r.out + r.err and "internal error" not in r.out


def test_a_connector_url_with_a_password_reaches_its_host(tmp_path, backend):
    with HTTPStub(lambda path: (200, b"{}")) as stub:
        url = f"http://spiff:{SECRET}@127.0.0.1:{stub.port}/"
        r = doctor(env_for(tmp_path, backend, SPIFFWORKFLOW_BACKEND_CONNECTOR_PROXY_URL=url), "api")
        assert stub.hits == ["/liveness"], r.out  # not "spiff:<password>@127.0.0.1" looked up as a name
    assert SECRET not in r.out + r.err
