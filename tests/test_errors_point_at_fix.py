"""Errors that point at the fix: the reserved character and its encoding, the *_FILE path, the
flag, the failure's own hint, clean punctuation, one closing line when stopped while waiting."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import backend_root, base_env, spiffctl
from tests.support.poll import wait_until
from tests.support.ports import ClosedPort
from tests.support.shared_services import SHARED_MARIADB_URL


@pytest.fixture
def backend(tmp_path: Path) -> Path:
    return backend_root(tmp_path / "backend")


def run_api(backend: Path, tmp_path: Path, **env: str):
    return spiffctl("run", "--role", "api", "--no-wait", env=base_env(backend, SPIFFCTL_RUN_DIR=str(tmp_path), **env))


def test_an_at_sign_in_a_database_password_is_named_with_its_encoding(backend, tmp_path):
    # SQLAlchemy ends the password at the first "@": "Xq@zz:Kv9" once read as port "Kv9@127.0.0.1".
    uri = "mysql://root:Xq@zz:Kv9@127.0.0.1:3306/spiff"
    ran = run_api(backend, tmp_path, SPIFFWORKFLOW_BACKEND_DATABASE_URI=uri)
    assert ran.code == 78, ran
    assert "not a number" not in ran.err and "percent-encode the password: `@` is `%40`" in ran.err, ran.err
    assert "Kv9" not in ran.err and "Xq@zz" not in ran.err


@pytest.mark.parametrize(("password", "encoded"), [("a#b", "`#` is `%23`"), ("a/b", "`/` is `%2F`")])
def test_a_character_that_ends_a_broker_url_early_is_named(backend, tmp_path, password, encoded):
    env = {
        "SPIFFWORKFLOW_BACKEND_CELERY_ENABLED": "true",
        "SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL": f"redis://:{password}@127.0.0.1:6379/0",
    }
    ran = spiffctl("run", "--role", "worker", "--no-wait", env=base_env(backend, SPIFFCTL_RUN_DIR=str(tmp_path), **env))
    assert ran.code == 78, ran
    assert "kombu and redis-py" in ran.err and f"percent-encode the password: {encoded}" in ran.err, ran.err


def test_a_secret_file_error_shows_its_path(backend, tmp_path):
    missing = tmp_path / "secrets" / "session_key"
    env = base_env(backend, SPIFFCTL_RUN_DIR=str(tmp_path), FLASK_SESSION_SECRET_KEY_FILE=str(missing))
    del env["FLASK_SESSION_SECRET_KEY"]
    ran = spiffctl("run", "--role", "api", "--no-wait", env=env)
    assert ran.code == 78 and f"cannot read {missing} (" in ran.err, ran.err


def test_a_refused_connection_reads_as_one_sentence(backend, tmp_path):
    with ClosedPort() as closed:
        env = {
            "SPIFFWORKFLOW_BACKEND_CELERY_ENABLED": "true",
            "SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL": closed.url("redis", "/0"),
        }
        full = base_env(backend, SPIFFCTL_RUN_DIR=str(tmp_path), **env)
        ran = spiffctl("run", "--role", "worker", "--wait-timeout", "0", env=full)
    assert ran.code == 69, ran
    assert ".;" not in ran.err and "; check that it runs" in ran.err, ran.err


def test_a_missing_database_is_not_blamed_on_the_server(backend, tmp_path):
    env = base_env(backend, SPIFFCTL_LOCK_URL=f"{SHARED_MARIADB_URL}spiffctl_absent_{os.getpid()}")
    ran = spiffctl("doctor", "--json", "--role", "background", "--timeout", "3", env=env)
    lease = ran.check("background lease")
    assert lease["status"] == "fail", ran
    assert lease["hint"].startswith("create the database") and "runs" not in lease["hint"], lease


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stopped_while_waiting_says_so_in_one_line(backend, tmp_path, signum):
    run_dir = tmp_path / "run"
    with ClosedPort() as closed:
        env = {
            "PATH": os.environ["PATH"],
            **base_env(backend, SPIFFCTL_RUN_DIR=str(run_dir)),
            "SPIFFWORKFLOW_BACKEND_DATABASE_URI": closed.url("postgresql", "/spiff"),
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "spiffctl", "run", "--role", "api", "--wait-timeout", "120"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_until(lambda: (run_dir / "waiting.json").exists(), timeout=30, what="the declared wait")
            proc.send_signal(signum)
            _, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signum, err
    last = err.strip().splitlines()[-1]
    name = signal.Signals(signum).name
    assert (
        last
        == f"spiffctl: stopped by {name} while waiting for its dependencies (database); the api script was not started"
    )
