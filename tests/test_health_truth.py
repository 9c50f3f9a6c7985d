"""Health is one truth: each role's own state, never an earlier process's, a declared wait is
"starting", and the API is healthy only when its own process answers on the port."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spiffctl.commands import status
from spiffctl.util import procfs
from tests.support.cli import HTTPStub, spiffctl


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    path = tmp_path / "run"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    p = subprocess.Popen(["sleep", "60"])
    yield p
    p.kill()
    p.wait()


def health(run_dir: Path, *args: str, **env: str):
    return spiffctl("healthcheck", *args, env={"SPIFFCTL_RUN_DIR": str(run_dir), **env})


def me() -> dict[str, object]:
    pid = os.getpid()
    return {"pid": pid, "start": procfs.start_time(pid)}


def holder(folder: Path, child: int, **fields: object) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = {**me(), "mode": "holder", "child_pid": child, "store": True, "updated": time.time(), "interval": 5.0}
    (folder / "background.json").write_text(json.dumps({**data, **fields}))


def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_role_inside_the_all_in_one_reads_its_own_state(run_dir, sleeper):
    # An earlier standalone run left its state at the top; the all-in-one's Background runs fine.
    (run_dir / "role").write_text("all\n")
    holder(run_dir, dead_pid(), pid=dead_pid())
    holder(run_dir / "roles" / "background", sleeper.pid)
    r = health(run_dir, "--role", "background")
    assert r.code == 0 and r.out.startswith("healthy: background: holds the lease"), r


def test_state_of_an_earlier_process_with_a_reused_pid_is_not_trusted(run_dir, sleeper):
    start = procfs.start_time(os.getpid())
    assert start is not None
    holder(run_dir, sleeper.pid, start=start + 1)  # this pid, but another process's start time
    r = health(run_dir, "--role", "background")
    assert r.code == 1 and "left by an earlier process" in r.out, r


def test_holder_without_a_scheduler_never_shows_none(run_dir):
    holder(run_dir, None)  # type: ignore[arg-type]
    r = health(run_dir, "--role", "background")
    assert r.code == 1 and "None" not in r.out and "has not started the scheduler" in r.out, r


def declare_wait(folder: Path, on: str, seconds: float | None = None, **fields: object) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    record = {**me(), "on": on, "since": now, **({"until": now + seconds} if seconds else {}), **fields}
    (folder / "waiting.json").write_text(json.dumps(record))


def test_a_declared_wait_is_starting_with_what_and_how_long(run_dir):
    on = "the safe first start of start_blocking_apscheduler, no record of a previous lease"
    declare_wait(run_dir, on, 15)
    r = health(run_dir, "--role", "background")
    assert r.code == 1, r  # not healthy yet: Docker's start_period does not count it
    assert r.out.startswith(f"starting: background: waiting 15 s for {on} ("), r
    assert r.out.rstrip().endswith("s left)") and "None" not in r.out


def test_a_wait_left_by_an_earlier_process_is_ignored(run_dir, sleeper):
    declare_wait(run_dir, "the schema", pid=dead_pid())
    holder(run_dir, sleeper.pid)
    r = health(run_dir, "--role", "background")
    assert r.code == 0 and r.out.startswith("healthy: background"), r


def test_status_and_healthcheck_read_the_same_wait(run_dir):
    (run_dir / "role").write_text("all\n")
    declare_wait(run_dir / "roles" / "worker", "the api role to answer")
    info = {"name": "worker", "statename": "RUNNING", "pid": os.getpid(), "now": time.time(), "start": 0}
    shown = status.line(info, run_dir)
    r = health(run_dir, "--role", "worker")
    assert shown.split()[1] == "WAITING" and r.out.startswith("starting: worker: waiting for the api role"), r
    assert r.out.split(": ", 2)[2].split(" (")[0] in shown


def test_all_in_one_starting_while_a_role_waits(run_dir, tmp_path):
    (run_dir / "role").write_text("all\n")
    declare_wait(run_dir / "roles" / "api", "its dependencies (database)")
    declare_wait(run_dir / "roles" / "background", "the api role to answer")
    env = {
        "SPIFFWORKFLOW_BACKEND_DATABASE_URI": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "FLASK_SESSION_SECRET_KEY": "k",
        "SPIFFWORKFLOW_BACKEND_BPMN_SPEC_ABSOLUTE_DIR": str(tmp_path),
    }
    r = health(run_dir, **env)
    assert r.code == 1 and r.out.startswith("starting: all: api: waiting for its dependencies"), r


def test_api_answered_by_another_process_is_unhealthy(run_dir, sleeper):
    # The api role's process (recorded by `run`) is alive but does not listen; this test's stub does.
    (run_dir / "api.process.json").write_text(json.dumps({"pid": sleeper.pid, "start": procfs.start_time(sleeper.pid)}))
    body = json.dumps({"ok": True}).encode()
    with HTTPStub(lambda path: (200, body)) as stub:
        r = health(run_dir, "--role", "api", SPIFFWORKFLOW_BACKEND_PORT=str(stub.port))
    assert r.code == 1, r
    assert f"port {stub.port} is answered by another process (pid {os.getpid()}, " in r.out, r


def test_api_recorded_but_gone_is_unhealthy_even_if_the_port_answers(run_dir):
    (run_dir / "api.process.json").write_text(json.dumps({"pid": dead_pid(), "start": 1}))
    body = json.dumps({"ok": True}).encode()
    with HTTPStub(lambda path: (200, body)) as stub:
        r = health(run_dir, "--role", "api", SPIFFWORKFLOW_BACKEND_PORT=str(stub.port))
    assert r.code == 1 and "the api process (pid" in r.out and "is not running" in r.out, r
