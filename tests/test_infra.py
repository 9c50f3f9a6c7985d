"""Tests of the test infrastructure itself: private servers, network oddities, stand-ins."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.standins import (
    BACKEND_TEMPLATE,
    find_records,
    kill_group,
    read_records,
    standin_env,
    start_standin,
    wait_for_record,
)
from tests.support.poll import wait_until
from tests.support.ports import Blackhole, ClosedPort, free_port, port_open
from tests.support.procs import group_members, pid_alive
from tests.support.servers.base import PrivateServer
from tests.support.servers.mariadb import PrivateMariaDB
from tests.support.servers.postgres import PrivatePostgres
from tests.support.servers.rabbitmq import PrivateRabbitMQ
from tests.support.servers.redis import PrivateRedis

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def assert_gone(server: PrivateServer, pgid: int) -> None:
    assert not server.running
    wait_until(lambda: not group_members(pgid), timeout=10, what=f"group {pgid} empty")
    assert not port_open(server.port)


def assert_cleaned(server: PrivateServer, pgid: int) -> None:
    server.cleanup()
    assert not server.dir.exists()
    assert not group_members(pgid)


def pg_connect(url: str, timeout: int = 3):
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=timeout)


def mysql_connect(server: PrivateMariaDB, password: str = "", database: str | None = None, timeout: int = 3):
    import pymysql

    return pymysql.connect(
        host="127.0.0.1",
        port=server.port,
        user="root",
        password=password,
        database=database,
        connect_timeout=timeout,
        read_timeout=timeout,
    )


# ---------------------------------------------------------------------------------------------
# private servers
# ---------------------------------------------------------------------------------------------


def pg_table(pg: PrivatePostgres, *, timeout: int = 3) -> Any:
    """The rows of table ``t`` in database ``app``, as :func:`pg_create_table` made them."""
    with pg_connect(pg.url_for("app"), timeout) as conn:
        return conn.execute("SELECT x FROM t").fetchall()


def pg_create_table(pg: PrivatePostgres) -> None:
    with pg_connect(pg.create_database("app")) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")


def mysql_table(db: PrivateMariaDB, *, timeout: int = 3) -> Any:
    conn = mysql_connect(db, database="app", timeout=timeout)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT x FROM t")
            return list(cur.fetchall())
    finally:
        conn.close()


def mysql_create_table(db: PrivateMariaDB) -> None:
    db.create_database("app")
    conn = mysql_connect(db, database="app")
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (x int)")
        cur.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    conn.close()


def db_errors() -> dict[str, type[Exception]]:
    import psycopg
    import pymysql

    return {"postgres": psycopg.OperationalError, "mariadb": pymysql.err.OperationalError}


@pytest.mark.parametrize(
    ("cls", "create_table", "table", "url"),
    [
        (PrivatePostgres, pg_create_table, pg_table, "postgresql://postgres@127.0.0.1:{port}/postgres"),
        (PrivateMariaDB, mysql_create_table, mysql_table, "mysql://root@127.0.0.1:{port}/"),
    ],
    ids=["postgres", "mariadb"],
)
def test_private_database_lifecycle(make_server, cls, create_table, table, url) -> None:
    db = make_server(cls)
    assert db.url == url.format(port=db.port)
    create_table(db)

    db.freeze()
    with pytest.raises(db_errors()[db.name]):
        table(db, timeout=1)
    db.thaw()
    assert table(db) == [(1,)]

    pgid = db.pid
    assert pgid is not None
    db.kill()
    assert_gone(db, pgid)
    db.start()  # crash recovery on the same data
    assert table(db) == [(1,)]
    db.restart()
    pgid = db.pid
    assert pgid is not None
    assert db.stop() == 0
    assert_gone(db, pgid)
    assert_cleaned(db, pgid)


def test_private_postgres_password(make_server) -> None:
    import psycopg

    pg: PrivatePostgres = make_server(PrivatePostgres, user="spiff", password="s3cret")
    assert pg.url == f"postgresql://spiff:s3cret@127.0.0.1:{pg.port}/postgres"
    with pg_connect(pg.url) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("spiff",)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        pg_connect(pg.url_for("postgres", password="wrong"))
    # admin over the private socket still works
    pg.create_database("other", owner="spiff")
    with pg_connect(pg.url_for("other")) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("other",)


def test_private_mariadb_password(make_server) -> None:
    import pymysql

    db: PrivateMariaDB = make_server(PrivateMariaDB, password="s3cret")
    assert db.url == f"mysql://root:s3cret@127.0.0.1:{db.port}/"
    mysql_connect(db, password="s3cret").close()
    with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
        mysql_connect(db, password="wrong")
    with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
        mysql_connect(db, password="")


def test_private_redis(make_server) -> None:
    import redis

    r: PrivateRedis = make_server(PrivateRedis, requirepass="pw", maxmemory="10mb", maxmemory_policy="noeviction")
    assert r.url == f"redis://:pw@127.0.0.1:{r.port}/0"
    client = r.client()
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert client.config_get("save") == {"save": ""}
    assert client.config_get("appendonly") == {"appendonly": "no"}
    client.close()
    with pytest.raises(redis.AuthenticationError):
        r.client(password="wrong").ping()
    with pytest.raises(redis.AuthenticationError):
        r.client(password="").set("k", "v")

    r.freeze()
    with pytest.raises(redis.TimeoutError):
        r.client(timeout=0.5).ping()
    r.thaw()
    assert r.client().ping()

    pgid = r.pid
    assert pgid is not None
    r.kill()
    assert_gone(r, pgid)
    r.restart()
    pgid = r.pid
    assert pgid is not None
    assert r.stop() == 0
    assert_gone(r, pgid)
    assert_cleaned(r, pgid)


def test_private_redis_defaults(private_redis: PrivateRedis) -> None:
    assert private_redis.url == f"redis://127.0.0.1:{private_redis.port}/0"
    assert private_redis.client().ping()


@pytest.mark.slow
def test_private_rabbitmq(make_server) -> None:
    import amqp

    mq: PrivateRabbitMQ = make_server(PrivateRabbitMQ, user="spiff", password="s3cret")
    assert mq.url == f"amqp://spiff:s3cret@127.0.0.1:{mq.port}//"
    conn = amqp.Connection(f"127.0.0.1:{mq.port}", userid="spiff", password="s3cret", connect_timeout=3)
    conn.connect()
    conn.close()
    bad = amqp.Connection(f"127.0.0.1:{mq.port}", userid="spiff", password="wrong", connect_timeout=3)
    with pytest.raises(amqp.exceptions.AccessRefused):
        bad.connect()
    pgid = mq.pid
    assert pgid is not None
    mq.stop()
    assert_gone(mq, pgid)
    assert_cleaned(mq, pgid)


def test_context_manager_cleans_up() -> None:
    with PrivateRedis() as r:
        pgid = r.pid
        assert pgid is not None
        directory = r.dir
        assert r.client().ping()
    assert not directory.exists()
    assert not group_members(pgid)
    with pytest.raises(RuntimeError):
        r.start()


# ---------------------------------------------------------------------------------------------
# network oddities
# ---------------------------------------------------------------------------------------------


def test_closed_port_refuses(closed_port: ClosedPort) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", closed_port.port), timeout=2)
    assert closed_port.url("redis") == f"redis://127.0.0.1:{closed_port.port}/"


def test_blackhole_accepts_and_never_answers(blackhole: Blackhole) -> None:
    with socket.create_connection(("127.0.0.1", blackhole.port), timeout=2) as s:
        s.settimeout(0.3)
        with pytest.raises(TimeoutError):
            s.recv(1)
        s.sendall(b"PING\r\n")
        with pytest.raises(TimeoutError):
            s.recv(1)
    wait_until(lambda: blackhole.connections >= 1, timeout=5, what="connection counted")


def test_blackhole_drop_mode_connect_times_out() -> None:
    with Blackhole(mode="drop") as hole, pytest.raises(TimeoutError):
        socket.create_connection(("127.0.0.1", hole.port), timeout=0.5)


def test_free_port_is_unique_and_free() -> None:
    ports = {free_port() for _ in range(5)}
    assert len(ports) == 5
    assert not any(port_open(p) for p in ports)


def test_wait_until_times_out_with_last_error() -> None:
    def boom() -> bool:
        raise ValueError("nope")

    with pytest.raises(TimeoutError, match="nope"):
        wait_until(boom, timeout=0.2, what="boom")


# ---------------------------------------------------------------------------------------------
# shared services
# ---------------------------------------------------------------------------------------------


def test_pg_database(pg_database: str) -> None:
    with pg_connect(pg_database) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == pg_database.rsplit("/", 1)[1]


def test_mysql_database(mysql_database: str) -> None:
    import pymysql

    name = mysql_database.rsplit("/", 1)[1]
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", database=name)
    conn.close()


def test_redis_namespace(redis_namespace) -> None:
    client = redis_namespace.client()
    client.set(redis_namespace.key("a"), "1")
    assert client.get(redis_namespace.key("a")) == b"1"
    client.close()


def test_shared_rabbitmq(shared_rabbitmq: str) -> None:
    assert shared_rabbitmq.startswith("amqp://")


# ---------------------------------------------------------------------------------------------
# stand-ins
# ---------------------------------------------------------------------------------------------


def _http_get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture
def api_env(tmp_path: Path, standin_record: Path) -> dict[str, str]:
    return {
        **standin_env(standin_record),
        "SPIFFWORKFLOW_BACKEND_PORT": str(free_port()),
        "SPIFFWORKFLOW_BACKEND_BPMN_SPEC_ABSOLUTE_DIR": str(tmp_path / "bpmn"),
    }


def test_standin_api_serves_status_and_exits_0_on_term(fake_backend: Path, standin_record: Path, api_env) -> None:
    env = {**api_env, "SPIFFWORKFLOW_BACKEND_WSGI_PATH_PREFIX": "/api", "STANDIN_PRINT": "hello"}
    proc = start_standin(fake_backend, "api", env)
    try:
        ready = wait_for_record(standin_record, role="api", event="ready")[0]
        port = env["SPIFFWORKFLOW_BACKEND_PORT"]
        assert ready["status_path"] == "/api/v1.0/status"
        assert _http_get(f"http://127.0.0.1:{port}/api/v1.0/status") == (200, {"ok": True})
        assert _http_get(f"http://127.0.0.1:{port}/v1.0/status")[0] == 404
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        kill_group(proc)
    assert proc.returncode == 0
    assert "hello" in out
    assert "hello" in err
    assert "Listening at: http://0.0.0.0:" in out
    start, stop = find_records(standin_record, event="start")[0], find_records(standin_record, event="stop")[0]
    assert start["cwd"] == str(fake_backend)
    assert start["pgid"] == proc.pid == start["pid"]
    assert start["env"]["SPIFFWORKFLOW_BACKEND_PORT"] == port
    assert start["argv"] == [str(fake_backend / "bin/boot_server_in_docker")]
    assert stop["signal"] == "SIGTERM"
    assert stop["exit_code"] == 0
    assert stop["monotonic"] >= start["monotonic"]


def test_standin_api_status_not_ok(fake_backend: Path, standin_record: Path, api_env, tmp_path: Path) -> None:
    flag = tmp_path / "status"
    proc = start_standin(fake_backend, "api", {**api_env, "STANDIN_STATUS_FILE": str(flag)})
    try:
        wait_for_record(standin_record, role="api", event="ready")
        url = f"http://127.0.0.1:{api_env['SPIFFWORKFLOW_BACKEND_PORT']}/v1.0/status"
        assert _http_get(url) == (200, {"ok": True})
        flag.write_text("false")
        assert _http_get(url) == (500, {"ok": False})
    finally:
        kill_group(proc)


def test_standin_api_requires_bpmn_dir_and_cwd(fake_backend: Path, standin_record: Path, api_env, tmp_path) -> None:
    env = {**api_env, "SPIFFWORKFLOW_BACKEND_BPMN_SPEC_ABSOLUTE_DIR": ""}
    proc = start_standin(fake_backend, "api", env)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 1
    assert "unbound variable" in err
    proc = start_standin(fake_backend, "api", api_env, cwd=tmp_path)
    proc.communicate(timeout=10)
    assert proc.returncode == 2
    reasons = [r["reason"] for r in find_records(standin_record, event="error")]
    assert reasons == ["bpmn_dir_unset", "cwd"]


def test_standin_background_ignores_term_and_child_shares_group(fake_backend: Path, standin_record: Path) -> None:
    env = standin_env(standin_record, ignore_term=True, spawn_child=True)
    proc = start_standin(fake_backend, "background", env)
    try:
        wait_for_record(standin_record, role="background", event="ready")
        child = wait_for_record(standin_record, role="background-child", event="start")[0]
        assert child["pgid"] == proc.pid
        assert child["ppid"] == proc.pid
        proc.send_signal(signal.SIGTERM)
        wait_for_record(standin_record, role="background", event="signal")
        assert proc.poll() is None
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
        wait_until(lambda: not pid_alive(child["pid"]), timeout=10, what="child gone")
    finally:
        kill_group(proc)


def test_standin_background_term_leaves_child(fake_backend: Path, standin_record: Path) -> None:
    proc = start_standin(fake_backend, "background", standin_env(standin_record, spawn_child=True))
    try:
        child = wait_for_record(standin_record, role="background-child", event="start")[0]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0  # not communicate(): the child still holds the pipes
        assert pid_alive(child["pid"])  # the parent does not forward: only a group signal ends it
        os.killpg(proc.pid, signal.SIGTERM)
        wait_for_record(standin_record, role="background-child", event="stop")
    finally:
        kill_group(proc)


def test_standin_worker_exit_after(fake_backend: Path, standin_record: Path) -> None:
    env = standin_env(standin_record, exit_after=0.5, exit_code=3, heartbeat=0.1)
    proc = start_standin(fake_backend, "worker", env)
    out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 3
    assert "standin worker: alive (1)" in out
    (exit_record,) = find_records(standin_record, role="worker", event="exit")
    assert exit_record["exit_code"] == 3


def test_standin_orphan(fake_backend: Path, standin_record: Path) -> None:
    env = standin_env(standin_record, orphan=True, orphan_seconds=0.5, exit_after=0.2)
    proc = start_standin(fake_backend, "worker", env)
    proc.communicate(timeout=15)
    orphan = wait_for_record(standin_record, role="worker-orphan", event="start")[0]
    assert orphan["pgid"] == proc.pid
    assert orphan["ppid"] != proc.pid
    wait_for_record(standin_record, role="worker-orphan", event="exit")


def test_standin_concurrent_records(fake_backend: Path, standin_record: Path) -> None:
    roles = ("background", "worker", "background", "worker", "worker")
    procs = [start_standin(fake_backend, role, standin_env(standin_record, exit_after=0.1)) for role in roles]
    for proc in procs:
        proc.communicate(timeout=15)
        assert proc.returncode == 0
    records = read_records(standin_record)
    assert len(records) == 3 * len(procs)  # start, ready, exit each


def test_fake_backend_is_a_private_copy(fake_backend: Path) -> None:
    script = fake_backend / "bin/start_celery_worker"
    assert os.access(script, os.X_OK)
    script.chmod(0o644)
    with pytest.raises(PermissionError):
        subprocess.run([str(script)], cwd=fake_backend, check=False)
    assert os.access(BACKEND_TEMPLATE / "bin/start_celery_worker", os.X_OK)
