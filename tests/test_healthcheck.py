"""``spiffctl healthcheck``: one line, exit 0 / 1, per role, from real processes and servers."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spiffctl.util import procfs
from tests.standins import give_venv, read_records
from tests.support.cli import HTTPStub, backend_root, base_env, celery_worker, spiffctl
from tests.support.poll import wait_until
from tests.support.ports import Blackhole, ClosedPort
from tests.support.servers.redis import PrivateRedis

SHARED_REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    path = tmp_path / "run"
    path.mkdir(mode=0o700)
    return path


def health(run_dir: Path, *args: str, **env: str):
    r = spiffctl("healthcheck", *args, env={"SPIFFCTL_RUN_DIR": str(run_dir), **env})
    assert r.out.count("\n") <= 1 and r.err.count("\n") <= 1, r  # quiet: one line
    return r


# ------------------------------------------------------------------------------------ api


def status_stub(body: dict, status: int = 200, path: str = "/v1.0/status") -> HTTPStub:
    payload = json.dumps(body).encode()
    return HTTPStub(lambda p: (status, payload) if p == path else (404, b"{}"))


@pytest.mark.parametrize(
    ("prefix", "path"),
    [({}, "/v1.0/status"), ({"SPIFFWORKFLOW_BACKEND_WSGI_PATH_PREFIX": "/spiff/"}, "/spiff/v1.0/status")],
    ids=["no-prefix", "path-prefix"],
)
def test_api_healthy_when_status_says_ok(run_dir, prefix, path):
    with status_stub({"ok": True, "can_access_frontend": True}, path=path) as stub:
        r = health(run_dir, "--role", "api", SPIFFWORKFLOW_BACKEND_PORT=str(stub.port), **prefix)
    assert r.code == 0, r
    assert r.out.startswith("healthy: api: ") and f"{path} answered ok" in r.out
    assert stub.hits == [path]


@pytest.mark.parametrize(("body", "status"), [({"ok": False}, 200), ({"error": "db"}, 500)])
def test_api_unhealthy_when_status_is_not_ok(run_dir, body, status):
    with status_stub(body, status) as stub:
        r = health(run_dir, "--role", "api", SPIFFWORKFLOW_BACKEND_PORT=str(stub.port))
    assert r.code == 1 and r.out.startswith("unhealthy: api: ")


def test_api_with_a_port_that_is_not_one_says_so_like_run(run_dir):
    r = health(run_dir, "--role", "api", SPIFFWORKFLOW_BACKEND_PORT="abc")
    assert r.code == 1, r
    said = "SPIFFWORKFLOW_BACKEND_PORT: 'abc' is not a TCP port; set a number from 1 to 65535"
    assert r.out == f"unhealthy: api: {said}\n"


def test_api_unhealthy_on_closed_port_and_silent_server(run_dir):
    with ClosedPort() as closed:
        r = health(run_dir, "--role", "api", SPIFFWORKFLOW_BACKEND_PORT=str(closed.port))
    assert r.code == 1 and "connection refused" in r.out
    with Blackhole() as hole:
        r = health(run_dir, "--role", "api", SPIFFWORKFLOW_BACKEND_PORT=str(hole.port))
    assert r.code == 1 and "unhealthy" in r.out
    assert r.elapsed < 2 + 1.0  # the 2 s, with slack for a loaded machine


# ------------------------------------------------------------------------------------ background


@pytest.fixture
def child():
    p = subprocess.Popen(["sleep", "60"])
    yield p
    p.kill()
    p.wait()


def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def write_state(run_dir: Path, **fields: object) -> None:
    data = {
        "pid": os.getpid(),
        "mode": "holder",
        "child_pid": None,
        "store": True,
        "updated": time.time(),
        "interval": 5.0,
    }
    data.update(fields)
    (run_dir / "background.json").write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("fields", "healthy", "words"),
    [
        ({"mode": "holder", "child": True}, True, "holds the lease; scheduler pid"),
        ({"mode": "unleased", "child": True}, True, "runs without a lease"),
        ({"mode": "holder", "child": False}, False, "is not running"),
        ({"mode": "standby", "store": True}, True, "standby; the lease store answers"),
        ({"mode": "standby", "store": False}, False, "lease store does not answer"),
        ({"mode": "standby", "store": None}, False, "lease store does not answer"),
        ({"mode": "holder", "child": True, "age": 16}, False, "16 s ago (limit 15 s)"),
        ({"mode": "standby", "interval": 1, "age": 8}, True, "standby"),  # 10 s floor for short TTLs
        ({"mode": "standby", "interval": 1, "age": 11}, False, "limit 10 s"),
        ({"mode": "unleased", "child": True, "age": 1000, "interval": None}, True, "runs without a lease"),
        ({"mode": "standby", "spiffctl_dead": True}, False, "is not running"),
        ({"mode": "leader"}, False, "unknown mode"),
    ],
)
def test_background_state(run_dir, child, fields, healthy, words):
    fields = dict(fields)
    if fields.pop("child", False):
        fields["child_pid"] = child.pid
    elif "child_pid" not in fields:
        fields["child_pid"] = dead_pid()
    if "age" in fields:
        fields["updated"] = time.time() - fields.pop("age")
    if fields.pop("spiffctl_dead", False):
        fields["pid"] = dead_pid()
    write_state(run_dir, **fields)
    r = health(run_dir, "--role", "background")
    assert r.code == (0 if healthy else 1), r
    assert words in r.out, r


def test_background_without_state_file(run_dir):
    r = health(run_dir, "--role", "background")
    assert r.code == 1 and "no runner state" in r.out


# ------------------------------------------------------------------------------------ worker


def test_worker_healthy_when_celery_answers_the_ping(tmp_path, run_dir, private_redis):
    with celery_worker(tmp_path, run_dir, private_redis.url) as (worker, env):
        # No --role: the role `run` remembered.
        r = spiffctl("healthcheck", env=env)
        assert r.code == 0, r
        assert r.out == f"healthy: worker: pid {worker.pid} alive; celery@{socket.gethostname()} answered the ping\n"
        assert b"celery" in Path(f"/proc/{worker.pid}/cmdline").read_bytes()  # the process run exec'd into
        with ClosedPort() as closed:
            r = spiffctl("healthcheck", env={**env, "SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL": closed.url("redis")})
        assert r.code == 1 and "refused" in r.out


def test_worker_named_by_celery_worker_hostname_is_pinged_by_that_name(tmp_path, run_dir, private_redis):
    # `celery worker` reads CELERY_WORKER_HOSTNAME (Click's CELERY_ prefix) like -n, %h expanded.
    with celery_worker(tmp_path, run_dir, private_redis.url, CELERY_WORKER_HOSTNAME="w1@%h") as (worker, env):
        r = spiffctl("healthcheck", env=env)
    assert r.code == 0, r
    assert r.out == f"healthy: worker: pid {worker.pid} alive; w1@{socket.gethostname()} answered the ping\n"


def test_worker_frozen_by_sigstop_is_unhealthy(tmp_path, run_dir, private_redis):
    with celery_worker(tmp_path, run_dir, private_redis.url) as (worker, env):
        os.killpg(worker.pid, signal.SIGSTOP)  # the main process and its pool: alive, connected, silent
        try:
            r = spiffctl("healthcheck", env=env)
        finally:
            os.killpg(worker.pid, signal.SIGCONT)
        assert r.code == 1, r
        # 0.8 s, or less when a busy machine made the healthcheck's own start-up eat into its bound.
        said = re.fullmatch(
            rf"unhealthy: worker: celery@{re.escape(socket.gethostname())} did not answer the ping within "
            rf"(0\.\d+) s: frozen or busy \(pid {worker.pid} is alive and the broker answers\)\n",
            r.out,
        )
        assert said and float(said[1]) <= 0.8, r
        # Thawed, it answers again.
        wait_until(lambda: spiffctl("healthcheck", env=env).code == 0, timeout=30, what="thawed worker answers")


def test_worker_dead_is_unhealthy(tmp_path, run_dir, private_redis):
    with celery_worker(tmp_path, run_dir, private_redis.url) as (worker, env):
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=15)
        r = spiffctl("healthcheck", env=env)
    assert r.code == 1 and r.out == f"unhealthy: worker: worker process (pid {worker.pid}) is not running\n"


def test_worker_ping_never_shows_the_broker_password(tmp_path, run_dir, make_server):
    password = "pw-Zq8x7kvq"
    redis = make_server(PrivateRedis, requirepass=password)
    argv_log = tmp_path / "argv.jsonl"
    with celery_worker(tmp_path, run_dir, redis.url, argv_log) as (_, env):
        assert password in env["SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL"]
        r = spiffctl("healthcheck", env=env)
        assert r.code == 0, r
        assert password not in r.out + r.err
    pings = [argv for argv in map(json.loads, argv_log.read_text().splitlines()) if "-c" in argv]
    assert pings, "the healthcheck never ran the backend venv's python"
    for argv in pings:
        assert not any("redis://" in a or password in a for a in argv), argv


@pytest.fixture
def recorded_worker(run_dir, child, tmp_path):
    """A live process recorded as the worker, started from a stand-in backend without a venv."""
    backend = backend_root(tmp_path / "backend", standins=True)
    record = {"pid": child.pid, "start": procfs.start_time(child.pid), "backend_dir": str(backend)}
    (run_dir / "worker.process.json").write_text(json.dumps(record))
    return backend


def test_worker_that_never_answers_over_amqp_shows_no_password(
    run_dir, child, recorded_worker, shared_rabbitmq, tmp_path
):
    argv_log = tmp_path / "argv.jsonl"
    give_venv(recorded_worker, argv_log=argv_log)
    r = health(
        run_dir,
        "--role",
        "worker",
        SPIFFWORKFLOW_BACKEND_CELERY_ENABLED="true",
        SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL=shared_rabbitmq,  # amqp://guest:guest@...
    )
    assert r.code == 1, r
    assert "did not answer the ping within 0." in r.out and f"frozen or busy (pid {child.pid} " in r.out
    assert "guest:guest" not in r.out + r.err
    [argv] = map(json.loads, argv_log.read_text().splitlines())
    assert not any("amqp://" in a or "guest" in a for a in argv), argv


@pytest.mark.parametrize(
    ("venv_python", "said", "hints"),
    [
        (None, ".venv/bin/python is missing or not executable; ", ("uv sync", "--backend-dir")),
        (sys._base_executable, ".venv/bin/python cannot import Celery (No module named 'celery'); ", ()),
    ],
    ids=["no-venv", "venv-without-celery"],
)
def test_worker_whose_backend_venv_cannot_ping_says_why(run_dir, recorded_worker, venv_python, said, hints):
    if venv_python is not None:  # the interpreter this venv was made from: no Celery in it
        if subprocess.run([venv_python, "-I", "-c", "import celery"], capture_output=True).returncode == 0:
            pytest.skip(f"{venv_python} has Celery")
        give_venv(recorded_worker, python=venv_python)
    r = health(
        run_dir,
        "--role",
        "worker",
        SPIFFWORKFLOW_BACKEND_CELERY_ENABLED="true",
        SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL=SHARED_REDIS,
    )
    assert r.code == 1, r
    assert r.out.startswith(f"unhealthy: worker: cannot ping the worker: {recorded_worker}/{said}")
    assert all(hint in r.out for hint in hints), r.out


def test_worker_pid_reused_by_another_process(run_dir, child):
    # The recorded start time no longer matches: the pid now belongs to someone else.
    (run_dir / "worker.process.json").write_text(json.dumps({"pid": child.pid, "start": 1}))
    r = health(run_dir, "--role", "worker", SPIFFWORKFLOW_BACKEND_CELERY_ENABLED="true")
    assert r.code == 1 and "is not running" in r.out


def test_worker_without_record(run_dir):
    r = health(run_dir, "--role", "worker")
    assert r.code == 1 and "no worker process recorded" in r.out


# ------------------------------------------------------------------------------------ role


def test_no_role_and_none_remembered(run_dir):
    r = health(run_dir)
    assert r.code == 1 and r.out == ""
    assert r.err.startswith("spiffctl: healthcheck: no role given") and r.err.count("\n") == 1


def test_remembered_role_is_used(run_dir):
    (run_dir / "role").write_text("background\n")
    r = health(run_dir)
    assert r.code == 1 and r.out.startswith("unhealthy: background: no runner state")


def test_api_slow_drip_server_is_cut_off_by_the_bound(run_dir):
    # Each byte arrives well within the socket timeout, so only the global bound can stop this.
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    stop = threading.Event()

    def drip() -> None:
        conn, _ = listener.accept()
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        while not stop.wait(0.3):
            try:
                conn.sendall(b"a")
            except OSError:
                return
        conn.close()

    threading.Thread(target=drip, daemon=True).start()
    try:
        r = health(run_dir, "--role", "api", SPIFFWORKFLOW_BACKEND_PORT=str(listener.getsockname()[1]))
    finally:
        stop.set()
        listener.close()
    assert r.code == 1 and r.out == "unhealthy: api: no answer within 1.8 s\n", r
    assert r.elapsed < 2 + 1.0


def test_all_in_one_is_healthy_when_every_role_is(fake_backend, standin_record, tmp_path):
    """`run --role all` under supervisord, then the image's plain `spiffctl healthcheck`."""
    from tests.standins import at_head, standin_env, wait_for_record
    from tests.support.poll import wait_until
    from tests.support.ports import free_port

    run_dir = tmp_path / "run"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SPIFFWORKFLOW_BACKEND_", "SPIFFCTL_"))},
        **standin_env(standin_record),
        "SPIFFCTL_RUN_DIR": str(run_dir),
        "FLASK_SESSION_SECRET_KEY": "session-key",
        "SPIFFWORKFLOW_BACKEND_BPMN_SPEC_ABSOLUTE_DIR": str(tmp_path),
        "SPIFFWORKFLOW_BACKEND_DATABASE_URI": at_head(f"sqlite:///{tmp_path / 'db.sqlite3'}"),
        "SPIFFWORKFLOW_BACKEND_PORT": str(free_port()),
        # A new SQLite lease file proves nothing about an earlier holder: the first start waits one TTL.
        "SPIFFCTL_LOCK_TTL": "3",
    }
    cmd = [sys.executable, "-m", "spiffctl", "run", "--role", "all", "--backend-dir", str(fake_backend)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    check = [sys.executable, "-m", "spiffctl", "healthcheck"]
    try:
        wait_for_record(standin_record, role="api", event="ready")
        wait_for_record(standin_record, role="background", event="start")
        r = wait_until(
            lambda: (
                (c := subprocess.run(check, env=env, capture_output=True, text=True, timeout=10)).returncode == 0 and c
            ),
            timeout=15,
            what="healthy all-in-one",
        )
        assert r.stdout == "healthy: all: api, background healthy\n"
        [background] = [rec for rec in read_records(standin_record) if rec["role"] == "background"][:1]
        os.kill(background["pid"], signal.SIGKILL)
        # supervisord then stops everything (fail fast); healthcheck must not say healthy meanwhile
        r = wait_until(
            lambda: (
                (c := subprocess.run(check, env=env, capture_output=True, text=True, timeout=10)).returncode == 1 and c
            ),
            timeout=15,
            what="unhealthy all-in-one",
        )
        assert r.stdout.startswith("unhealthy: all: ")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


def test_api_started_by_run_with_the_standin(tmp_path, run_dir):
    from tests.support.ports import free_port

    backend = backend_root(tmp_path / "backend", standins=True)
    status_file = tmp_path / "status"
    status_file.write_text("true")
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "SPIFFCTL_RUN_DIR": str(run_dir),
        "STANDIN_STATUS_FILE": str(status_file),
        "STANDIN_BIND": "127.0.0.1",
        **base_env(backend, SPIFFWORKFLOW_BACKEND_PORT=str(port), SPIFFWORKFLOW_BACKEND_WSGI_PATH_PREFIX="/api"),
    }
    api = subprocess.Popen(
        [sys.executable, "-m", "spiffctl", "run", "--role", "api", "--no-wait"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        r = wait_until(lambda: (r := spiffctl("healthcheck", env=env)).code == 0 and r, timeout=20, what="api up")
        assert r.out == f"healthy: api: http://127.0.0.1:{port}/api/v1.0/status answered ok\n"
        status_file.write_text("false")
        r = spiffctl("healthcheck", env=env)
        assert r.code == 1 and "answered HTTP 500" in r.out
    finally:
        api.kill()
        api.wait()
