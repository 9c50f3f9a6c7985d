"""The migration stand-ins against real databases: the stand-in ``uv`` (``flask db ...``) and the
bin scripts with ``STANDIN_MIGRATIONS`` (API upgrade, Background/worker schema wait).

What spiffctl's own migration tests rely on: one upgrade reaches head with Alembic's lines; two
at once collide like the real ones; failure injection; ``current``/``heads`` print what Alembic
prints; the scripts upgrade or wait as the real ones do.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.standins import (
    HEAD,
    REVISIONS,
    UV_DIR,
    find_records,
    kill_group,
    set_version,
    standin_env,
    start_standin,
    uv_env,
    versions,
    wait_for_record,
)
from tests.support.ports import free_port

RUNNING = "INFO  [alembic.runtime.migration] Running upgrade"
COLLISION = {
    # The second PostgreSQL upgrade blocks on the first one's uncommitted alembic_version and
    # fails when it commits; MariaDB and SQLite fail on whichever CREATE TABLE comes second.
    "postgresql": ('sqlalchemy.exc.IntegrityError: (psycopg2.errors.UniqueViolation) duplicate key value violates '
                   'unique constraint "pg_type_typname_nsp_index"', "already exists"),
    "mariadb": ("sqlalchemy.exc.OperationalError: (MySQLdb.OperationalError) (1050,", "already exists"),
    "sqlite": ("sqlalchemy.exc.OperationalError: (sqlite3.OperationalError)", "already exists|database is locked"),
}  # fmt: skip


def db_env(url: str, record: Path, **options: object) -> dict[str, str]:
    return {**uv_env(), **standin_env(record, **options), "SPIFFWORKFLOW_BACKEND_DATABASE_URI": url}


def uv(backend: Path, *args: str, env: Mapping[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(UV_DIR / "uv"), "run", *args],
        cwd=backend if cwd is None else cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def start_uv(backend: Path, *args: str, env: Mapping[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(UV_DIR / "uv"), "run", *args],
        cwd=backend,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


# ------------------------------------------------------------------------------ stand-in uv


def test_upgrade_reaches_head_with_alembic_lines(fake_backend, standin_record, database) -> None:
    _, url = database
    env = db_env(url, standin_record, upgrade_seconds=0.2)
    done = uv(fake_backend, "flask", "db", "upgrade", env=env)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith(RUNNING)]
    assert lines[0] == f"{RUNNING}  -> {REVISIONS[0]}, create user table"
    assert lines[1] == f"{RUNNING} {REVISIONS[0]} -> {REVISIONS[1]}, add process instance"
    assert len(lines) == len(REVISIONS)
    assert versions(url) == [HEAD]
    applied = [r["revision"] for r in find_records(standin_record, role="uv-upgrade", event="revision")]
    assert applied == list(REVISIONS)
    (end,) = find_records(standin_record, role="uv-upgrade", event="exit")
    assert end["exit_code"] == 0
    # At head, an upgrade is a no-op that still creates the app.
    again = uv(fake_backend, "flask", "db", "upgrade", env=env)
    assert again.returncode == 0 and RUNNING not in again.stderr
    assert len(find_records(standin_record, role="uv-upgrade", event="start")) == 2


def test_two_upgrades_at_once_collide_and_exactly_one_fails(fake_backend, standin_record, database) -> None:
    kind, url = database
    # 1.5 s per revision: the second starts well before the first can finish, even on a busy machine.
    env = db_env(url, standin_record, upgrade_seconds=6)
    first = start_uv(fake_backend, "flask", "db", "upgrade", env=env)
    try:
        # The second one starts while the first is inside its upgrade, as replicas do.
        wait_for_record(standin_record, role="uv-upgrade", event="revision")
        second = start_uv(fake_backend, "flask", "db", "upgrade", env=env)
        try:
            results = [p.communicate(timeout=60) for p in (first, second)]
        finally:
            kill_group(second)
    finally:
        kill_group(first)
    codes = sorted(p.returncode for p in (first, second))
    assert codes == [0, 1]
    (failed_err,) = [err for p, (_, err) in zip((first, second), results, strict=True) if p.returncode == 1]
    final, alternatives = COLLISION[kind]
    assert final in failed_err
    assert any(text in failed_err for text in alternatives.split("|"))
    assert "Traceback (most recent call last):" in failed_err
    assert versions(url) == [HEAD]
    exits = sorted(r["exit_code"] for r in find_records(standin_record, role="uv-upgrade", event="exit"))
    assert exits == [0, 1]


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_fail_at_names_the_revision_and_exits_1(fake_backend, standin_record, kind, request, tmp_path) -> None:
    url = request.getfixturevalue("pg_database") if kind == "postgresql" else f"sqlite:///{tmp_path / 'db.sqlite3'}"
    env = db_env(url, standin_record, upgrade_seconds=0, upgrade_fail_at=REVISIONS[2])
    done = uv(fake_backend, "flask", "db", "upgrade", env=env)
    assert done.returncode == 1
    last_step = [line for line in done.stderr.splitlines() if line.startswith(RUNNING)][-1]
    assert last_step == f"{RUNNING} {REVISIONS[1]} -> {REVISIONS[2]}, add human task"
    assert f"standin_fail_at_{REVISIONS[2]}" in done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("sqlalchemy.exc.")][-1].startswith(
        ("sqlalchemy.exc.ProgrammingError", "sqlalchemy.exc.OperationalError")
    )
    # PostgreSQL runs the whole upgrade in one transaction: nothing stays; SQLite commits per revision.
    assert versions(url) == ([] if kind == "postgresql" else [REVISIONS[1]])


def test_current_and_heads_print_what_alembic_prints(fake_backend, standin_record, database) -> None:
    _, url = database
    env = db_env(url, standin_record)
    heads = uv(fake_backend, "flask", "db", "heads", env=env)
    assert (heads.returncode, heads.stdout) == (0, f"{HEAD} (head)\n")
    empty = uv(fake_backend, "flask", "db", "current", env=env)
    assert (empty.returncode, empty.stdout) == (0, "")
    assert "Context impl" in empty.stderr
    set_version(url, REVISIONS[1])
    assert uv(fake_backend, "flask", "db", "current", env=env).stdout == f"{REVISIONS[1]}\n"
    set_version(url, HEAD)
    assert uv(fake_backend, "flask", "db", "current", env=env).stdout == f"{HEAD} (head)\n"
    set_version(url, "0123456789ab")
    unknown = uv(fake_backend, "flask", "db", "current", env=env)
    assert unknown.returncode == 1
    assert "Can't locate revision identified by '0123456789ab'" in unknown.stderr
    assert len(find_records(standin_record, role="uv-current", event="exit")) == 4
    assert len(find_records(standin_record, role="uv-heads", event="exit")) == 1


def test_downgrade_steps_back_one_revision(fake_backend, standin_record, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    env = db_env(url, standin_record, upgrade_seconds=0)
    assert uv(fake_backend, "flask", "db", "upgrade", env=env).returncode == 0
    done = uv(fake_backend, "flask", "db", "downgrade", env=env)
    assert done.returncode == 0
    assert f"Running downgrade {HEAD} -> {REVISIONS[2]}, index human task" in done.stderr
    assert versions(url) == [REVISIONS[2]]


def test_sqlite_by_type_uses_the_instance_folder(fake_backend, standin_record, monkeypatch) -> None:
    monkeypatch.delenv("SPIFFWORKFLOW_BACKEND_DATABASE_URI", raising=False)
    env = {**uv_env(), **standin_env(standin_record, upgrade_seconds=0)}
    env.update(SPIFFWORKFLOW_BACKEND_DATABASE_TYPE="sqlite", SPIFFWORKFLOW_BACKEND_ENV="unit_testing")
    done = uv(fake_backend, "flask", "db", "upgrade", env=env)
    assert done.returncode == 0, done.stderr
    db_file = fake_backend / "src" / "instance" / "db_unit_testing.sqlite3"
    assert versions(f"sqlite:///{db_file}") == [HEAD]


def test_flask_outside_the_backend_root_exits_2_and_other_commands_are_execd(
    fake_backend, standin_record, tmp_path
) -> None:
    env = db_env(f"sqlite:///{tmp_path / 'db.sqlite3'}", standin_record)
    outside = uv(fake_backend, "flask", "db", "upgrade", env=env, cwd=tmp_path)
    assert outside.returncode == 2
    assert "Could not locate a Flask application" in outside.stderr
    echo = uv(fake_backend, "--no-sync", "echo", "hello", env=env)
    assert (echo.returncode, echo.stdout) == (0, "hello\n")
    missing = uv(fake_backend, "no-such-command-here", env=env)
    assert missing.returncode == 2 and "Failed to spawn: `no-such-command-here`" in missing.stderr


def test_app_start_burns_cpu_time(fake_backend, standin_record) -> None:
    env = {**uv_env(), **standin_env(standin_record, app_cpu=0.3)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert uv(fake_backend, "flask", "db", "heads", env=env).returncode == 0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime) >= 0.3


def test_sigterm_during_a_postgres_upgrade_rolls_back_and_exits_143(fake_backend, standin_record, pg_database) -> None:
    # 3 s per revision: SIGTERM arrives inside the second one.
    env = db_env(pg_database, standin_record, upgrade_seconds=12)
    proc = start_uv(fake_backend, "flask", "db", "upgrade", env=env)
    try:
        wait_for_record(standin_record, role="uv-upgrade", event="revision")
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        kill_group(proc)
    assert proc.returncode == 143
    assert versions(pg_database) == []  # not even alembic_version: the one transaction was rolled back
    (end,) = find_records(standin_record, role="uv-upgrade", event="exit")
    assert end["exit_code"] == 143


# ------------------------------------------------------------------------------ bin scripts


def api_env(url: str, record: Path, tmp_path: Path, **options: object) -> dict[str, str]:
    return {
        **db_env(url, record, migrations=True, **options),
        "SPIFFWORKFLOW_BACKEND_PORT": str(free_port()),
        "SPIFFWORKFLOW_BACKEND_BPMN_SPEC_ABSOLUTE_DIR": str(tmp_path / "bpmn"),
        "SPIFFWORKFLOW_BACKEND_UPGRADE_DB": "true",
    }


def test_api_with_upgrade_db_upgrades_then_serves(fake_backend, standin_record, pg_database, tmp_path) -> None:
    proc = start_standin(fake_backend, "api", api_env(pg_database, standin_record, tmp_path, upgrade_seconds=0.5))
    try:
        (ready,) = wait_for_record(standin_record, role="api", event="ready", timeout=60)
    finally:
        kill_group(proc)
    (upgrade_end,) = find_records(standin_record, role="uv-upgrade", event="exit")
    assert upgrade_end["exit_code"] == 0
    assert upgrade_end["monotonic"] < ready["monotonic"]
    assert versions(pg_database) == [HEAD]


def test_api_exits_with_the_failed_upgrades_code(fake_backend, standin_record, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    env = api_env(url, standin_record, tmp_path, upgrade_seconds=0, upgrade_fail_at=REVISIONS[0])
    proc = start_standin(fake_backend, "api", env)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        kill_group(proc)
    assert proc.returncode == 1
    assert "Upgrading database..." in out
    assert "Exited with BAD EXIT CODE '1' in ./bin/boot_server_in_docker script at line: 35." in err
    assert not find_records(standin_record, role="api", event="ready")


def test_api_without_upgrade_db_runs_no_flask_command(fake_backend, standin_record, tmp_path) -> None:
    env = api_env(f"sqlite:///{tmp_path / 'db.sqlite3'}", standin_record, tmp_path)
    env["SPIFFWORKFLOW_BACKEND_UPGRADE_DB"] = "false"
    proc = start_standin(fake_backend, "api", env)
    try:
        wait_for_record(standin_record, role="api", event="ready")
    finally:
        kill_group(proc)
    assert not [r for r in find_records(standin_record) if r["role"].startswith("uv-")]


@pytest.mark.parametrize("role", ["background", "worker"])
def test_background_and_worker_wait_for_the_schema_at_head(
    fake_backend, standin_record, pg_database, role, tmp_path
) -> None:
    set_version(pg_database, REVISIONS[1])
    env = db_env(pg_database, standin_record, migrations=True, schema_poll=0.2)
    proc = start_standin(fake_backend, role, env)
    try:
        # Two rounds seen behind head: it waits (and each round is two app starts).
        rounds = wait_for_record(standin_record, role=role, event="schema", count=2, timeout=60)
        assert {(r["current"], r["head"]) for r in rounds} == {(REVISIONS[1], HEAD)}
        assert not find_records(standin_record, role=role, event="ready")
        set_version(pg_database, HEAD)
        (ready,) = wait_for_record(standin_record, role=role, event="ready", timeout=60)
    finally:
        kill_group(proc)
    last = find_records(standin_record, role=role, event="schema")[-1]
    assert (last["current"], last["head"]) == (HEAD, HEAD)
    assert last["monotonic"] < ready["monotonic"]
    starts = find_records(standin_record, event="start")
    assert sum(r["role"] == "uv-current" for r in starts) == sum(r["role"] == "uv-heads" for r in starts) >= 3


def test_background_exits_when_the_schema_cannot_be_read(fake_backend, standin_record, tmp_path) -> None:
    env = db_env("postgresql://postgres@127.0.0.1:1/none", standin_record, migrations=True)
    proc = start_standin(fake_backend, "background", env)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        kill_group(proc)
    assert proc.returncode == 1
    assert "bin/wait_for_db_schema_migrations script at line: 11." in err
    assert "Exited with BAD EXIT CODE '1' in ./bin/start_blocking_apscheduler script at line: 14." in err
