"""``spiffctl doctor`` against real services, healthy and broken, run as the operator runs it."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.standins import set_version
from tests.support.cli import BASE, HEAD, HTTPStub, backend_root, base_env, spiffctl, unresponsive_env
from tests.support.ports import Blackhole, ClosedPort
from tests.support.servers.postgres import PrivatePostgres
from tests.support.servers.redis import PrivateRedis

SHARED_PG = "postgresql://postgres@127.0.0.1:5432"
SHARED_MYSQL = "mysql://root@127.0.0.1:3306"
SHARED_REDIS = "redis://127.0.0.1:6379/0"
SHARED_AMQP = "amqp://guest:guest@127.0.0.1:5672//"
PLANTED = "Pl4nted-s3cret-pw"  # must never appear in doctor's output
STATUSES = {"ok", "warn", "fail", "skip"}


def unique(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def backend(tmp_path: Path) -> Path:
    return backend_root(tmp_path / "backend")


@pytest.fixture
def liveness() -> Iterator[HTTPStub]:
    with HTTPStub(lambda path: (200, b"ok") if path == "/liveness" else (404, b"")) as stub:
        yield stub


@pytest.fixture
def pg_db(pg_database: str) -> str:
    return pg_database


@pytest.fixture
def mysql_db(mysql_database: str) -> str:
    return mysql_database


def set_revision(url: str, revision: str | None) -> None:
    """Plant an Alembic state: ``None`` leaves the database empty."""
    if revision is not None:
        set_version(url, revision)


def assert_shape(doc: dict) -> None:
    assert list(doc) == ["version", "ok", "role", "checks"]
    assert isinstance(doc["ok"], bool)
    assert doc["checks"], doc
    for c in doc["checks"]:
        assert list(c) == ["id", "name", "status", "detail", "hint", "elapsed_ms", "problems"], c
        assert c["status"] in STATUSES
        assert isinstance(c["detail"], str) and c["detail"] and "\n" not in c["detail"]
        assert isinstance(c["hint"], str) and isinstance(c["elapsed_ms"], int)
        if c["status"] in ("warn", "fail"):
            assert c["hint"], c  # every problem comes with a fix
    assert doc["ok"] == all(c["status"] != "fail" for c in doc["checks"])


# ------------------------------------------------------------------------------------ healthy


def test_all_healthy_with_celery_exits_0(backend, pg_db, liveness):
    set_revision(pg_db, HEAD)
    env = base_env(
        backend,
        SPIFFWORKFLOW_BACKEND_DATABASE_URI=pg_db,
        SPIFFWORKFLOW_BACKEND_CELERY_ENABLED="true",
        SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL=SHARED_AMQP,
        SPIFFWORKFLOW_BACKEND_CELERY_RESULT_BACKEND=SHARED_REDIS,
        SPIFFWORKFLOW_BACKEND_CONNECTOR_PROXY_URL=liveness.url,
    )
    r = spiffctl("doctor", "--json", env=env)
    assert r.code == 0, r
    doc = r.doc
    assert_shape(doc)
    assert doc["ok"] is True and doc["role"] == "all"
    assert {c["name"]: c["status"] for c in doc["checks"]} == {
        "configuration": "ok",
        "backend scripts": "ok",
        "process models": "ok",
        "database": "ok",
        "database schema": "ok",
        "broker": "ok",
        "result backend": "ok",
        "background lease": "warn",  # no Redis for it: the all-in-one runs its Background unleased
        "background start": "ok",  # no backend venv here: the script, said in the detail
        "connector proxy": "ok",
    }
    assert r.check("database schema")["detail"] == f"at head ({HEAD})"
    assert "RabbitMQ" in r.check("broker")["detail"]
    assert liveness.hits == ["/liveness"]
    assert r.err == ""


def test_mysql_at_head_and_text_table(backend, mysql_db, liveness, redis_namespace):
    from spiffctl.lease.stores import Grant
    from spiffctl.lease.stores.redis import RedisStore

    set_revision(mysql_db, HEAD)
    key = redis_namespace.key("lease")  # every key under it is deleted after the test
    held = RedisStore.from_url(SHARED_REDIS, key, 15, timeout=2)  # a Background holds the lease
    assert isinstance(held.try_acquire(), Grant)
    env = base_env(
        backend,
        SPIFFWORKFLOW_BACKEND_DATABASE_URI=mysql_db,
        SPIFFWORKFLOW_BACKEND_CONNECTOR_PROXY_URL=liveness.url,
        SPIFFCTL_LOCK_URL=SHARED_REDIS,
        SPIFFCTL_LOCK_KEY=key,
    )
    r = spiffctl("doctor", env=env)
    assert r.code == 0, r
    lines = r.out.splitlines()
    assert any(line.startswith("  ✓  database schema") and "at head" in line for line in lines), r.out
    # Celery is off: the broker is explained, not silently dropped.
    assert any(line.startswith("  -  broker") and "Celery is disabled" in line for line in lines), r.out
    assert any(line.startswith("  ✓  background lease") and "held by" in line for line in lines), r.out
    assert lines[-1].startswith("OK: ")
    held.release()


# ------------------------------------------------------------------------------------ schema states


@pytest.mark.parametrize(
    ("revision", "upgrade", "status", "detail"),
    [
        (BASE, "", "fail", f"behind (1 migration): at {BASE}, head {HEAD}"),
        (BASE, "true", "warn", f"behind (1 migration): at {BASE}, head {HEAD}"),
        (None, "", "fail", f"empty (2 migrations to apply): no alembic_version, head {HEAD}"),
        ("0000deadbeef", "true", "fail", "unknown: the database is at 0000deadbeef"),
    ],
)
def test_schema_state_postgres(backend, pg_db, revision, upgrade, status, detail):
    set_revision(pg_db, revision)
    env = base_env(
        backend, SPIFFWORKFLOW_BACKEND_DATABASE_URI=pg_db, SPIFFWORKFLOW_BACKEND_UPGRADE_DB=upgrade, SPIFFCTL_LOCK="off"
    )
    r = spiffctl("doctor", "--json", "--role", "background", env=env)
    assert_shape(r.doc)
    row = r.check("database schema")
    assert row["status"] == status and row["detail"].startswith(detail), row
    assert r.code == (1 if status == "fail" else 0)


def test_schema_empty_mysql(backend, mysql_db):
    env = base_env(backend, SPIFFWORKFLOW_BACKEND_DATABASE_URI=mysql_db)
    r = spiffctl("doctor", "--json", "--role", "api", env=env)
    assert r.check("database")["status"] == "ok"
    assert r.check("database schema")["detail"].startswith("empty (2 migrations to apply)")
    assert r.code == 1


def test_schema_unknown_without_migrations_folder(backend, pg_db):
    set_revision(pg_db, HEAD)
    (backend / "migrations" / "versions" / f"{HEAD}_.py").unlink()
    (backend / "migrations" / "versions" / f"{BASE}_.py").unlink()
    env = base_env(backend, SPIFFWORKFLOW_BACKEND_DATABASE_URI=pg_db)
    r = spiffctl("doctor", "--json", "--role", "api", env=env)
    row = r.check("database schema")
    assert row["status"] == "warn" and row["detail"].startswith("unknown: no migration files"), row


def test_schema_migration_in_progress_names_the_lock_holder(backend, pg_db):
    from spiffctl import databases
    from spiffctl.config.settings import Endpoint
    from spiffctl.roles import Need

    set_revision(pg_db, BASE)
    db = Endpoint(Need.DATABASE, "postgres", pg_db, "X")
    lock = databases.of(db).open_lock(db, "migrate", 5)
    try:
        assert lock.try_acquire()
        r = spiffctl(
            "doctor", "--json", "--role", "worker", env=base_env(backend, SPIFFWORKFLOW_BACKEND_DATABASE_URI=pg_db)
        )
    finally:
        lock.close()
    row = r.check("database schema")
    assert row["status"] == "warn", row
    assert row["detail"].startswith(f"migration in progress (lock held by spiffctl migrate on {os.uname().nodename} "
                                    f"pid {os.getpid()} from ")  # fmt: skip
    assert row["detail"].endswith(f"at {BASE}, head {HEAD}, 1 to apply")


def test_schema_unreadable_is_not_called_empty(backend, pg_db, shared_postgres):
    """A user without SELECT on alembic_version, on a database at head: unreadable, never "empty"."""
    import psycopg

    role = f"noselect_{uuid.uuid4().hex[:8]}"
    set_revision(pg_db, HEAD)
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
    try:
        env = base_env(backend, SPIFFWORKFLOW_BACKEND_DATABASE_URI=pg_db.replace("postgres@", f"{role}@"))
        r = spiffctl("doctor", "--json", "--role", "worker", env=env)
        row = r.check("database schema")
        assert row["status"] == "fail" and row["detail"].startswith("unreadable: alembic_version cannot be read ("), row
        assert "permission denied" in row["detail"] and "grant SELECT on alembic_version" in row["hint"]
        assert r.check("database")["status"] == "ok"
    finally:
        with psycopg.connect(pg_db, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
        with psycopg.connect(shared_postgres, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")


# ------------------------------------------------------------------------------------ failures


def test_wrong_password_never_shows_the_password(backend, tmp_path):
    secret_file = tmp_path / "session_key"
    secret_file.write_text("file-held-session-secret\n")
    with PrivatePostgres(password="right-password") as pg, PrivateRedis(requirepass="right-redis-pw") as redis:
        env = base_env(
            backend,
            SPIFFWORKFLOW_BACKEND_DATABASE_URI=pg.url_for("postgres", password=PLANTED),
            SPIFFWORKFLOW_BACKEND_CELERY_ENABLED="true",
            SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL=redis.url_for(0, password=PLANTED + "-redis"),
            SPIFFWORKFLOW_BACKEND_CONNECTOR_PROXY_URL=f"http://user:{PLANTED}@127.0.0.1:{ClosedPort().port}",
            FLASK_SESSION_SECRET_KEY_FILE=str(secret_file),
        )
        del env["FLASK_SESSION_SECRET_KEY"]
        for args in (["--json"], []):
            r = spiffctl("doctor", *args, env=env)
            assert r.code == 1, r
            for text in (r.out, r.err):
                assert PLANTED not in text
                assert "file-held-session-secret" not in text
            if args:
                assert "password authentication failed" in r.check("database")["detail"]
                assert r.check("database schema")["status"] == "skip"
                broker = r.check("broker")
                assert broker["status"] == "fail" and "authentication" in broker["detail"].lower(), broker
                assert ":***@" in r.check("connector proxy")["detail"]


def test_rabbitmq_wrong_password(backend):
    env = base_env(
        backend,
        SPIFFWORKFLOW_BACKEND_CELERY_ENABLED="true",
        SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL=f"amqp://guest:{PLANTED}@127.0.0.1:5672//",
    )
    r = spiffctl("doctor", "--json", "--role", "worker", env=env)
    assert r.code == 1
    assert "ACCESS_REFUSED" in r.check("broker")["detail"]
    assert PLANTED not in r.out + r.err


def test_stopped_servers_and_closed_ports(backend):
    with PrivatePostgres() as pg, PrivateRedis() as redis:
        db_url, broker_url = pg.url, redis.url
        pg.stop()
        redis.stop()
        with ClosedPort() as closed:
            env = base_env(
                backend,
                SPIFFWORKFLOW_BACKEND_DATABASE_URI=db_url,
                SPIFFWORKFLOW_BACKEND_CELERY_ENABLED="true",
                SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL=broker_url,
                SPIFFWORKFLOW_BACKEND_CELERY_RESULT_BACKEND=closed.url("redis", "/1"),
                SPIFFWORKFLOW_BACKEND_CONNECTOR_PROXY_URL=closed.url("http", ""),
            )
            r = spiffctl("doctor", "--json", env=env)
    assert r.code == 1
    assert_shape(r.doc)
    for name in ("database", "broker", "result backend"):
        row = r.check(name)
        assert row["status"] == "fail" and "refused" in row["detail"].lower(), row
    assert "points at it" in r.check("database")["hint"]
    assert r.check("connector proxy")["status"] == "warn"  # warn only, never a failure


def test_missing_database(backend):
    env = base_env(backend, SPIFFWORKFLOW_BACKEND_DATABASE_URI=f"{SHARED_PG}/{unique('absent')}")
    r = spiffctl("doctor", "--json", "--role", "api", env=env)
    row = r.check("database")
    assert row["status"] == "fail" and "does not exist" in row["detail"]
    assert row["hint"].startswith("create the database")


@pytest.mark.parametrize("mode", ["accept", "drop"])
def test_time_bound_when_everything_swallows_packets(backend, mode):
    holes = [Blackhole(mode) for _ in range(4)]
    try:
        for scheme in ("postgresql", "mysql"):
            env = unresponsive_env(backend, scheme, holes)
            r = spiffctl("doctor", "--json", "--timeout", "1", env=env)
            assert r.elapsed < 1 + 1.5, r  # the bench measures the precise figure (about timeout + 0.2 s)
            assert r.code == 1
            assert_shape(r.doc)
            for name in ("database", "broker", "result backend"):
                row = r.check(name)
                assert row["status"] == "fail", row
                assert "no answer within 1 s" in row["detail"] or "timed out" in row["detail"], row
            assert r.check("connector proxy")["status"] == "warn"
    finally:
        for hole in holes:
            hole.close()


def _immutable(path: Path) -> bool:
    """Make ``path`` unwritable even for root (chattr +i); plain chmod when not root."""
    if os.geteuid() != 0:
        path.chmod(0o500)
        return True
    return subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0


def test_unwritable_process_model_folder(backend):
    models = backend / "models"
    assert _immutable(models), "chattr +i is not available here"
    try:
        r = spiffctl("doctor", "--json", "--role", "api", env=base_env(backend))
    finally:
        subprocess.run(["chattr", "-i", str(models)], capture_output=True)
        models.chmod(0o755)
    row = r.check("process models")
    assert row["status"] == "fail" and "not writable" in row["detail"], row
    assert r.code == 1
    assert not list(models.iterdir())  # the write probe leaves nothing behind


def test_process_model_folder_is_a_file_or_missing(backend):
    target = backend / "models-file"
    target.write_text("not a folder")
    r = spiffctl("doctor", "--json", env=base_env(backend, SPIFFWORKFLOW_BACKEND_BPMN_SPEC_ABSOLUTE_DIR=str(target)))
    assert r.check("process models")["detail"].endswith("is not a folder")
    missing = backend / "new" / "models"
    r = spiffctl("doctor", "--json", env=base_env(backend, SPIFFWORKFLOW_BACKEND_BPMN_SPEC_ABSOLUTE_DIR=str(missing)))
    assert r.check("process models")["status"] == "warn"  # the API's git init will create it


def test_bin_scripts_missing_or_not_executable(backend):
    (backend / "bin" / "start_blocking_apscheduler").chmod(0o644)
    r = spiffctl("doctor", "--json", "--role", "background", env=base_env(backend))
    row = r.check("backend scripts")
    assert row["status"] == "fail" and "not executable" in row["detail"]
    assert row["hint"] == "chmod +x bin/start_blocking_apscheduler"
    (backend / "bin" / "boot_server_in_docker").unlink()
    r = spiffctl("doctor", "--json", "--role", "api", env=base_env(backend))
    assert "bin/boot_server_in_docker not found" in r.check("backend scripts")["detail"]
    assert "--backend-dir" in r.check("backend scripts")["hint"]


# ------------------------------------------------------------------------------------ configuration


def test_configuration_problems_scheduler_trap_and_default_mysql(backend):
    env = base_env(backend, SPIFFWORKFLOW_BACKEND_RUN_BACKGROUND_SCHEDULER_IN_CREATE_APP="true")
    del env["SPIFFWORKFLOW_BACKEND_DATABASE_URI"]
    del env["FLASK_SESSION_SECRET_KEY"]
    r = spiffctl("doctor", "--json", "--timeout", "1", env=env)
    assert_shape(r.doc)
    assert r.check("configuration")["status"] == "fail"
    assert r.problem("FLASK_SESSION_SECRET_KEY")["status"] == "fail"
    assert r.problem("SPIFFWORKFLOW_BACKEND_DATABASE_TYPE")["status"] == "warn"  # defaulted to mysql
    trap = r.problem("SPIFFWORKFLOW_BACKEND_RUN_BACKGROUND_SCHEDULER_IN_CREATE_APP")
    assert trap["status"] == "warn" and "api, background" in trap["message"]
    assert trap["fix"].startswith("set SPIFFWORKFLOW_BACKEND_RUN_BACKGROUND_SCHEDULER_IN_CREATE_APP=false")
    assert r.code == 1


def test_unreadable_secret_file_exits_78(backend, tmp_path):
    env = base_env(backend, SPIFFWORKFLOW_BACKEND_DATABASE_URI_FILE=str(tmp_path / "absent"))
    del env["SPIFFWORKFLOW_BACKEND_DATABASE_URI"]
    r = spiffctl("doctor", "--json", env=env)
    assert r.code == 78
    assert_shape(r.doc)
    [row] = r.doc["checks"]
    assert row["id"] == "configuration" and row["status"] == "fail"
    assert r.problem("SPIFFWORKFLOW_BACKEND_DATABASE_URI_FILE")["status"] == "fail"
    r = spiffctl("doctor", env=env)
    assert r.code == 78 and r.out == ""
    assert r.err.startswith("spiffctl: SPIFFWORKFLOW_BACKEND_DATABASE_URI_FILE: cannot read")


def test_a_secret_set_twice_is_one_finding_to_the_contract(backend, tmp_path):
    secret = tmp_path / "uri"
    secret.write_text("sqlite:////tmp/x.sqlite3\n")
    env = base_env(backend, SPIFFWORKFLOW_BACKEND_DATABASE_URI_FILE=str(secret))
    r = spiffctl("doctor", "--json", env=env)
    assert r.code == 78
    problem = r.problem("SPIFFWORKFLOW_BACKEND_DATABASE_URI")
    assert "are both set" in problem["message"] and problem["fix"] == "unset one of them"


def test_role_limits_the_checks(backend):
    env = base_env(
        backend, SPIFFWORKFLOW_BACKEND_CELERY_ENABLED="true", SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL=SHARED_REDIS
    )
    api = {c["name"] for c in spiffctl("doctor", "--json", "--role", "api", env=env).doc["checks"]}
    assert "broker" not in api and "database" in api
    worker = spiffctl("doctor", "--json", "--role", "worker", env=env)
    assert worker.doc["role"] == "worker"
    assert worker.check("broker")["status"] == "ok"
    assert worker.check("result backend")["status"] == "skip"  # unset: optional
    # A worker without Celery has nothing to do: a configuration failure.
    env["SPIFFWORKFLOW_BACKEND_CELERY_ENABLED"] = "false"
    r = spiffctl("doctor", "--json", "--role", "worker", env=env)
    assert r.problem("SPIFFWORKFLOW_BACKEND_CELERY_ENABLED")["status"] == "fail"
    assert r.code == 1


def test_usage_errors(backend):
    assert spiffctl("doctor", "--role", "scheduler", env=base_env(backend)).code == 2
    r = spiffctl("doctor", "--timeout", "soon", env=base_env(backend))
    assert r.code == 2 and "--timeout" in r.err


def test_text_output_failures_first_and_verdict(backend, tmp_path):
    closed = ClosedPort()
    try:
        env = base_env(
            backend,
            SPIFFWORKFLOW_BACKEND_DATABASE_URI=closed.url("postgresql", "/db").replace("://", f"://u:{PLANTED}@"),
            SPIFFWORKFLOW_BACKEND_RUN_BACKGROUND_SCHEDULER_IN_CREATE_APP="true",
        )
        r = spiffctl("doctor", "--role", "api", env=env)
    finally:
        closed.close()
    assert r.code == 1 and PLANTED not in r.out
    marks = {line[2] for line in r.out.splitlines() if line.startswith("  ") and len(line) > 3}
    assert {"✓", "!", "✗"} <= marks, r.out
    summary = r.out.split("To fix, failures first:\n", 1)[1].splitlines()
    problem_marks = [line[2] for line in summary if line.startswith("  ") and line[2] in "✗!"]
    assert problem_marks == sorted(problem_marks, key=lambda m: m != "✗") and problem_marks[0] == "✗"
    assert r.out.splitlines()[-1].startswith("FAIL: 1 failed")


# --- the Background lease -------------------------------------------------------------------


def lease_env(backend: Path, **extra: str) -> dict[str, str]:
    return base_env(backend, SPIFFWORKFLOW_BACKEND_DATABASE_TYPE="sqlite", **extra)


def test_lease_holder_is_named_with_time_left(backend, make_server):
    from spiffctl.lease.stores import Grant
    from spiffctl.lease.stores.redis import RedisStore

    redis_server = make_server(PrivateRedis, requirepass=PLANTED)
    url = redis_server.url_for(0, password=PLANTED)
    held = RedisStore.from_url(url, "spiffctl:test:lease", 15, timeout=2, host="replica-7", pid=4242)
    assert isinstance(held.try_acquire(), Grant)
    r = spiffctl(
        "doctor",
        "--role",
        "background",
        "--json",
        env=lease_env(backend, SPIFFCTL_LOCK_URL=url, SPIFFCTL_LOCK_KEY="spiffctl:test:lease"),
    )
    row = r.check("background lease")
    assert row["status"] == "ok", row
    assert "held by replica-7 pid 4242" in row["detail"] and "s left" in row["detail"]
    assert r.check("lease redis policy")["status"] == "ok"
    assert PLANTED not in r.out + r.err


def test_lease_nobody_holds_it_and_evicting_redis_fails(backend, make_server):
    redis_server = make_server(PrivateRedis, maxmemory="64mb", maxmemory_policy="allkeys-lru")
    r = spiffctl("doctor", "--role", "background", "--json", env=lease_env(backend, SPIFFCTL_LOCK_URL=redis_server.url))
    assert r.code == 1
    assert r.check("background lease")["status"] == "warn"
    policy = r.check("lease redis policy")
    assert policy["status"] == "fail" and "allkeys-lru" in policy["detail"] and "noeviction" in policy["hint"]


def test_lease_without_redis_lives_in_the_database(backend, pg_database):
    from spiffctl.config.settings import load
    from spiffctl.lease.config import lease_config
    from spiffctl.lease.stores import Grant
    from spiffctl.lease.stores.database import DatabaseStore

    r = spiffctl("doctor", "--role", "background", "--json", env=lease_env(backend))
    check = r.check("background lease")
    assert check["status"] == "warn" and "nobody holds it (in SQLite at sqlite:///" in check["detail"]
    assert "Celery is off" in check["detail"]
    env = lease_env(backend, SPIFFCTL_LOCK_URL=pg_database.replace("postgres@", f"postgres:{PLANTED}@"))
    config = lease_config(load(env, backend))
    assert config.database is not None
    held = DatabaseStore(config.database, config.key, config.ttl, timeout=2, host="replica-7", pid=4242)
    try:
        grant = held.try_acquire()
        assert isinstance(grant, Grant)
        r = spiffctl("doctor", "--role", "background", "--json", env=env)
    finally:
        held.close()
    check = r.check("background lease")
    assert check["status"] == "ok", check
    assert (
        f"held by replica-7 pid 4242, epoch {grant.epoch}" in check["detail"] and "in PostgreSQL at" in check["detail"]
    )
    assert "SPIFFCTL_LOCK_URL names a database" in check["detail"]
    assert "lease redis policy" not in {c["name"] for c in r.doc["checks"]}
    assert PLANTED not in r.out + r.err
    r = spiffctl("doctor", "--role", "background", "--json", env=lease_env(backend, SPIFFCTL_LOCK="off"))
    assert r.check("background lease")["status"] == "warn"
    r = spiffctl("doctor", "--role", "api", "--json", env=lease_env(backend))
    assert "background lease" not in {c["name"] for c in r.doc["checks"]}


def test_lease_redis_unreachable_or_wrong_password(backend, make_server):
    closed = ClosedPort()
    try:
        r = spiffctl(
            "doctor",
            "--role",
            "background",
            "--json",
            env=lease_env(backend, SPIFFCTL_LOCK_URL=f"redis://:{PLANTED}@127.0.0.1:{closed.port}/0"),
        )
    finally:
        closed.close()
    assert r.check("background lease")["status"] == "fail"
    redis_server = make_server(PrivateRedis, requirepass="right-one")
    r = spiffctl(
        "doctor",
        "--role",
        "background",
        "--json",
        env=lease_env(backend, SPIFFCTL_LOCK_URL=redis_server.url_for(0, password=PLANTED)),
    )
    assert r.check("background lease")["status"] == "fail"
    assert PLANTED not in r.out + r.err


def test_configuration_keeps_its_id_whatever_it_finds_and_names_a_misread_boolean(backend):
    # UPGRADE_DB=yes is false for the API script: an empty database would wait for nobody.
    quiet = spiffctl("doctor", "--json", "--role", "api", "--timeout", "1", env=base_env(backend))
    upgrade = "SPIFFWORKFLOW_BACKEND_UPGRADE_DB"
    env = base_env(backend, **{upgrade: "yes"})
    loud = spiffctl("doctor", "--json", "--role", "api", "--timeout", "1", env=env)
    assert quiet.check("configuration")["problems"] == [] and quiet.check("configuration")["status"] == "ok"
    assert loud.check("configuration")["status"] == "fail" and loud.code == 1
    assert "'yes'" in loud.problem(upgrade)["message"]
    assert [c["id"] for c in quiet.doc["checks"]] == [c["id"] for c in loud.doc["checks"]]
    text = spiffctl("doctor", "--role", "api", "--timeout", "1", env=env)
    assert f"{upgrade} 'yes' is read as false" in text.out and f"fix: set {upgrade}=true" in text.out


# --- how the Background starts ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "venv", "status", "detail"),
    [
        (None, True, "ok", "SPIFFCTL_BACKGROUND_START=warm: a warm child run by"),
        (None, False, "ok", "is missing or not executable: the scheduler starts through the script"),
        ("script", True, "ok", "SPIFFCTL_BACKGROUND_START=script: the scheduler starts through the backend's script"),
        ("hot", True, "fail", "SPIFFCTL_BACKGROUND_START: 'hot' is not one of warm, script"),
    ],
)
def test_background_start_mode_and_why(backend, value, venv, status, detail):
    if venv:
        from tests.standins import give_venv

        give_venv(backend, site=True)
    extra = {"SPIFFCTL_BACKGROUND_START": value} if value else {}
    r = spiffctl("doctor", "--role", "background", "--json", env=lease_env(backend, **extra))
    row = r.check("background start")
    assert row["status"] == status and detail in row["detail"], row
    assert r.check("background lease")  # the lease is still checked
    api = spiffctl("doctor", "--role", "api", "--json", env=lease_env(backend, **extra))
    assert "background start" not in {c["name"] for c in api.doc["checks"]}
