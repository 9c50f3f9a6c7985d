"""``spiffctl run --role api|worker``: waits for what the role needs, then execs its script in place.

The Background role (lease) and ``all`` (supervisord) have their own test modules.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.standins import at_head, find_records, standin_env, uv_env, wait_for_record
from tests.support.servers.postgres import PrivatePostgres
from tests.support.servers.redis import PrivateRedis

PASSWORD = "Planted-Secret-4711"
CLEAN = {k: v for k, v in os.environ.items() if not k.startswith(("SPIFFWORKFLOW_BACKEND_", "SPIFFCTL_", "FLASK_"))}


def backend_env(record: Path, database_uri: str, **extra: str) -> dict[str, str]:
    return {
        **CLEAN,
        **standin_env(record),
        "FLASK_SESSION_SECRET_KEY": "session-key-for-tests",
        "SPIFFWORKFLOW_BACKEND_BPMN_SPEC_ABSOLUTE_DIR": str(record.parent),
        "SPIFFWORKFLOW_BACKEND_DATABASE_URI": database_uri,
        "SPIFFCTL_RUN_DIR": str(record.parent / "run"),
        **extra,
    }


def run(backend: Path, role: str, env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "spiffctl", "run", "--role", role, "--backend-dir", str(backend), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise
    return proc.returncode, out, err


@pytest.fixture
def pg_uri(pg_database: str) -> str:
    return at_head(pg_database)


def test_api_execs_its_script_in_place_with_the_resolved_environment(fake_backend, standin_record, pg_uri, tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("file-secret-value\n")
    env = backend_env(
        standin_record,
        pg_uri,
        STANDIN_EXIT_AFTER="0.2",
        SPIFFWORKFLOW_BACKEND_RUN_BACKGROUND_SCHEDULER_IN_CREATE_APP="true",
        SPIFFWORKFLOW_BACKEND_CONNECTOR_PROXY_URL_FILE=str(secret_file),
    )
    proc = run(fake_backend, "api", env)
    code, _, err = finish(proc)
    assert code == 0, err
    [start] = find_records(standin_record, role="api", event="start")
    assert start["pid"] == proc.pid  # exec'd in place: same PID
    assert start["cwd"] == str(fake_backend)
    assert start["argv"][0] == str(fake_backend / "bin/boot_server_in_docker")
    child_env = start["env"]
    assert child_env["SPIFFWORKFLOW_BACKEND_RUN_BACKGROUND_SCHEDULER_IN_CREATE_APP"] == "false"
    assert child_env["SPIFFWORKFLOW_BACKEND_CONNECTOR_PROXY_URL"] == "file-secret-value"
    assert "SPIFFWORKFLOW_BACKEND_CONNECTOR_PROXY_URL_FILE" not in child_env
    assert child_env["UV_NO_SYNC"] == "true"
    assert child_env["SPIFFCTL_ROLE"] == "api"
    assert "overridden to false for the api role" in err
    assert "file-secret-value" not in err


def test_exit_code_and_signals_pass_through(fake_backend, standin_record, pg_uri):
    env = backend_env(standin_record, pg_uri, STANDIN_EXIT_AFTER="0.1", STANDIN_EXIT_CODE="3")
    assert finish(run(fake_backend, "api", env))[0] == 3
    env = backend_env(standin_record, pg_uri)
    proc = run(fake_backend, "api", env)
    wait_for_record(standin_record, role="api", event="ready", count=1)
    proc.send_signal(signal.SIGINT)
    # Same process: the signal reaches the script itself, and its death by SIGINT is our status.
    assert finish(proc)[0] in (-signal.SIGINT, 128 + signal.SIGINT)


def worker_env(record: Path, database_uri: str, broker: str, **extra: str) -> dict[str, str]:
    """A worker stand-in that exits 0.2 s after it started, Celery on ``broker``."""
    return backend_env(
        record,
        database_uri,
        STANDIN_EXIT_AFTER="0.2",
        SPIFFWORKFLOW_BACKEND_CELERY_ENABLED="true",
        SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL=broker,
        **extra,
    )


def test_worker_waits_for_database_and_broker(fake_backend, standin_record, pg_uri, shared_redis):
    code, _, err = finish(run(fake_backend, "worker", worker_env(standin_record, pg_uri, shared_redis)))
    assert code == 0, err
    [start] = find_records(standin_record, role="worker", event="start")
    assert start["argv"][0].endswith("bin/start_celery_worker")


def test_worker_with_celery_disabled_is_a_configuration_error(fake_backend, standin_record, pg_uri):
    code, _, err = finish(run(fake_backend, "worker", backend_env(standin_record, pg_uri)))
    assert code == 78
    assert "SPIFFWORKFLOW_BACKEND_CELERY_ENABLED=true for every role" in err
    assert find_records(standin_record) == []


def test_database_started_two_seconds_late_is_waited_for(fake_backend, standin_record, make_server):
    db: PrivatePostgres = make_server(PrivatePostgres, start=False)
    env = backend_env(standin_record, db.url, STANDIN_EXIT_AFTER="0.2")
    proc = run(fake_backend, "api", env, "--wait-timeout", "60")
    time.sleep(2)
    assert proc.poll() is None, "spiffctl must still be waiting"
    assert find_records(standin_record) == []

    def start_migrated() -> None:
        db.start()
        at_head(db.url)  # spiffctl then also waits for the schema, found at head by its next poll

    threading.Thread(target=start_migrated, daemon=True).start()
    code, _, err = finish(proc)
    assert code == 0, err
    assert find_records(standin_record, role="api", event="start")


def test_progress_lines_name_what_where_and_why_but_no_password(fake_backend, standin_record, closed_port):
    uri = f"postgresql://spiff:{PASSWORD}@127.0.0.1:{closed_port.port}/spiff"
    code, out, err = finish(run(fake_backend, "api", backend_env(standin_record, uri), "--wait-timeout", "4"))
    assert code == 69
    lines = err.strip().splitlines()
    progress = [line for line in lines if "waiting for" in line]
    assert progress and f"127.0.0.1:{closed_port.port}" in progress[0] and "of 4.0 s" in progress[0]
    assert "not ready after" in lines[-1] and "SPIFFWORKFLOW_BACKEND_DATABASE_URI" in lines[-1]
    assert PASSWORD not in out + err
    assert find_records(standin_record) == []


def test_wrong_password_fails_fast(fake_backend, standin_record, make_server):
    db = make_server(PrivatePostgres, user="spiff", password="right-password")
    uri = db.url_for("postgres", password=PASSWORD)
    started = time.monotonic()
    code, out, err = finish(run(fake_backend, "api", backend_env(standin_record, uri), "--wait-timeout", "60"))
    assert code == 69
    assert time.monotonic() - started < 30  # failed at once, not after the 60 s timeout
    assert "password authentication failed" in err
    assert PASSWORD not in out + err
    assert len(err.strip().splitlines()) == 1


def test_unknown_database_fails_fast(fake_backend, standin_record, shared_postgres):
    uri = shared_postgres.rsplit("/", 1)[0] + f"/missing_{uuid.uuid4().hex[:8]}"
    code, _, err = finish(run(fake_backend, "api", backend_env(standin_record, uri), "--wait-timeout", "60"))
    assert code == 69
    assert "does not exist" in err


def test_wrong_broker_password_fails_fast(fake_backend, standin_record, pg_uri, make_server):
    broker: PrivateRedis = make_server(PrivateRedis, requirepass="right-password")
    env = backend_env(
        standin_record,
        pg_uri,
        SPIFFWORKFLOW_BACKEND_CELERY_ENABLED="true",
        SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL=broker.url_for(0, password=PASSWORD),
    )
    code, out, err = finish(run(fake_backend, "worker", env, "--wait-timeout", "60"))
    assert code == 69
    assert "broker (redis at" in err
    assert PASSWORD not in out + err


def test_wrong_rabbitmq_password_fails_fast(fake_backend, standin_record, pg_uri):
    env = backend_env(
        standin_record,
        pg_uri,
        SPIFFWORKFLOW_BACKEND_CELERY_ENABLED="true",
        SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL=f"amqp://guest:{PASSWORD}@127.0.0.1:5672//",
    )
    code, out, err = finish(run(fake_backend, "worker", env, "--wait-timeout", "60"))
    assert code == 69
    assert "ACCESS_REFUSED" in err
    assert PASSWORD not in out + err


def test_no_wait_skips_the_checks(fake_backend, standin_record, closed_port):
    uri = f"postgresql://u@127.0.0.1:{closed_port.port}/x"
    env = backend_env(standin_record, uri, STANDIN_EXIT_AFTER="0.1")
    assert finish(run(fake_backend, "api", env, "--no-wait"))[0] == 0


def test_wait_timeout_zero_checks_once(fake_backend, standin_record, closed_port):
    uri = f"postgresql://u@127.0.0.1:{closed_port.port}/x"
    code, _, err = finish(run(fake_backend, "api", backend_env(standin_record, uri), "--wait-timeout", "0"))
    assert code == 69 and "not ready after" in err


def test_missing_script_is_127_and_not_executable_is_126(fake_backend, standin_record, pg_uri):
    script = fake_backend / "bin/boot_server_in_docker"
    script.chmod(0o644)
    code, _, err = finish(run(fake_backend, "api", backend_env(standin_record, pg_uri)))
    assert code == 126 and str(script) in err and "chmod +x" in err
    script.unlink()
    code, _, err = finish(run(fake_backend, "api", backend_env(standin_record, pg_uri)))
    assert code == 127 and str(script) in err


def test_bad_interpreter_line_is_reported(fake_backend, standin_record, pg_uri):
    script = fake_backend / "bin/boot_server_in_docker"
    script.write_text("#!/no/such/interpreter\n")
    code, _, err = finish(run(fake_backend, "api", backend_env(standin_record, pg_uri)))
    assert code == 127 and "#! line" in err


def test_sqlite_database_is_checked_without_a_server(fake_backend, standin_record):
    """The derived SQLite file (none yet) passes the check; the upgrade creates it, then the API starts."""
    env = backend_env(
        standin_record,
        "",
        STANDIN_EXIT_AFTER="0.1",
        SPIFFWORKFLOW_BACKEND_DATABASE_TYPE="sqlite",
        SPIFFWORKFLOW_BACKEND_UPGRADE_DB="true",
        **uv_env(),
    )
    code, _, err = finish(run(fake_backend, "api", env))
    assert code == 0, err
    [upgrade] = find_records(standin_record, role="uv-upgrade", event="exit")
    assert upgrade["exit_code"] == 0
    [start] = find_records(standin_record, role="api", event="start")
    assert start["env"]["SPIFFWORKFLOW_BACKEND_UPGRADE_DB"] == "false"


def test_background_lease_settings_are_checked_before_waiting(fake_backend, standin_record, closed_port):
    """Unusable lease settings are a configuration error: reported at once, not after a 60 s wait."""
    uri = f"postgresql://u@127.0.0.1:{closed_port.port}/x"
    started = time.monotonic()
    env = backend_env(standin_record, uri, SPIFFCTL_LOCK_URL="ftp://user:hunter2@cache/0")
    code, _, err = finish(run(fake_backend, "background", env, "--wait-timeout", "60"))
    assert code == 78 and "SPIFFCTL_LOCK_URL" in err and "neither a Redis nor a database URL" in err
    assert "hunter2" not in err
    assert time.monotonic() - started < 30
    assert "waiting for" not in err
    code, _, err = finish(
        run(fake_backend, "background", backend_env(standin_record, uri, SPIFFCTL_LOCK_TTL="1"), "--wait-timeout", "60")
    )
    assert code == 78 and "SPIFFCTL_LOCK_TTL" in err


@pytest.mark.parametrize("role", ["api", "all"])
def test_unusable_run_dir_stops_every_role_with_78(fake_backend, standin_record, role):
    env = backend_env(
        standin_record, f"sqlite:///{standin_record.parent / 'db.sqlite3'}", SPIFFCTL_RUN_DIR="/etc/hostname"
    )
    env.update(standin_env(standin_record, exit_after=0))
    code, out, err = finish(run(fake_backend, role, env, "--no-wait"))
    assert (code, out) == (78, "")
    assert err.splitlines() == [
        "spiffctl: SPIFFCTL_RUN_DIR: '/etc/hostname' is not a folder; point SPIFFCTL_RUN_DIR at a folder of your "
        "own that only you can write (created 0700 when missing), or unset it"
    ]
    assert not find_records(standin_record, role="api", event="start")


@pytest.mark.parametrize("mode", ["accept", "drop"])
def test_a_silent_database_is_given_up_on_at_the_timeout_with_69(fake_backend, standin_record, mode):
    from tests.support.ports import Blackhole

    with Blackhole(mode) as hole:
        env = backend_env(standin_record, f"postgresql://spiff:{PASSWORD}@127.0.0.1:{hole.port}/spiff")
        code, out, err = finish(run(fake_backend, "api", env, "--wait-timeout", "1"))
    assert (code, out) == (69, "")
    [line] = err.splitlines()
    assert line.startswith(f"spiffctl: database (postgres at 127.0.0.1:{hole.port}/spiff) not ready after ")
    assert "no answer within" in line and PASSWORD not in line
    assert not find_records(standin_record)


@pytest.mark.parametrize(
    ("celery_in_venv", "operator", "expected"),
    [(True, None, "true"), (True, "false", "false"), (False, None, None)],
)
def test_worker_direct_exec_when_the_venv_has_celery(
    fake_backend, standin_record, pg_uri, shared_redis, celery_in_venv, operator, expected
):
    """``<root>/.venv/bin/celery`` present and the variable unset: the script execs it directly."""
    name = "SPIFFWORKFLOW_BACKEND_CELERY_WORKER_DIRECT_EXEC"
    if celery_in_venv:
        (fake_backend / ".venv" / "bin").mkdir(parents=True)
        (fake_backend / ".venv" / "bin" / "celery").write_text("#!/bin/sh\n")
    extra = {name: operator} if operator is not None else {}
    code, _, err = finish(run(fake_backend, "worker", worker_env(standin_record, pg_uri, shared_redis, **extra)))
    assert code == 0, err
    [start] = find_records(standin_record, role="worker", event="start")
    assert start["env"].get(name) == expected
    said = f"{name} is unset and .venv/bin/celery exists: set to true for the worker role"
    assert (said in err) == (expected == "true" and operator is None), err


def test_a_split_role_does_not_load_the_all_in_one_package():
    """``run``'s module imports nothing of ``spiffctl.allinone``: only the all-in-one (which sets
    ``SPIFFCTL_START_AFTER`` or runs ``--role all``) loads it, inside the call."""
    code = (
        "import sys, spiffctl.commands.run; print(sorted(m for m in sys.modules if m.startswith('spiffctl.allinone')))"
    )
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
