"""``run --role all`` as PID 1 of a new PID namespace: signals handled, orphans reaped, nothing left.

``unshare --pid --fork --mount-proc`` (we run as root) makes spiffctl PID 1 inside, like the
container's main process. From outside we see every process of the namespace.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.allinone import Run, base_env, records, spiffctl
from tests.support.poll import wait_until

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare(1)"
)


def stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().decode(errors="replace").rsplit(")", 1)[-1].split()
    except OSError:
        return None


def pid_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def namespace_members(ns: str) -> dict[int, str]:
    """pid -> state letter of every process in the PID namespace ``ns``."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and pid_ns(int(entry)) == ns:
            fields = stat_fields(int(entry))
            if fields:
                out[int(entry)] = fields[0]
    return out


def inner_init(unshare_pid: int) -> int:
    """The forked child of unshare: PID 1 inside the namespace."""
    found: list[int] = []

    def look() -> bool:
        for entry in os.listdir("/proc"):
            fields = stat_fields(int(entry)) if entry.isdigit() else None
            if fields and int(fields[1]) == unshare_pid:
                found.append(int(entry))
                return True
        return False

    wait_until(look, timeout=10)
    return found[0]


def ns_pid(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return [int(x) for x in line.split()[1:]]
    except OSError:
        pass
    return [0]


def test_pid1_forwards_signals_reaps_orphans_and_leaves_nothing(tmp_path: Path):
    env = base_env(
        tmp_path,
        SPIFFWORKFLOW_BACKEND_CELERY_ENABLED="true",
        SPIFFCTL_LOCK="off",
        STANDIN_API_ORPHAN="true",
        STANDIN_API_ORPHAN_SECONDS="0.3",  # an orphan that exits: a zombie unless PID 1 reaps it
        STANDIN_WORKER_SPAWN_CHILD="true",  # a child in the role's process group (like uv run -> python)
        STANDIN_BACKGROUND_LINGER="true",  # a daemon in its own session, outside every group
    )
    run = Run(
        ["unshare", "--pid", "--fork", "--mount-proc", *spiffctl("run", "--role", "all", "--no-wait")], env, tmp_path
    )
    try:
        init = inner_init(run.pid)
        ns = pid_ns(init)
        assert ns and ns != pid_ns(os.getpid())
        for role in ("api", "background", "worker"):
            run.wait_for(rf"^{role} \| {role} ready")
        assert ns_pid(init)[-1] == 1  # spiffctl (now supervisord in-process) is PID 1 inside
        wait_until(lambda: sum(1 for r in records(tmp_path) if r[1] == "orphan") == 2, timeout=10)
        # The stand-ins record their pids as seen inside the namespace.
        orphans = [pid for _, what, pid in records(tmp_path) if what == "orphan"]
        # The orphan exits after 0.3 s; PID 1's main loop reaps it (it wakes on SIGCHLD).
        time.sleep(1.5)
        members = namespace_members(ns)
        assert not [pid for pid, state in members.items() if state == "Z"], members
        inner = {ns_pid(pid)[-1] for pid in members}
        assert any(pid in inner for pid in orphans), "the lingering daemon should still run"
        assert len(members) >= 6  # init, three roles, the worker's child, the daemon

        started = time.monotonic()
        # Straight to PID 1 inside, as a container runtime does (unshare itself does not forward).
        os.kill(init, signal.SIGTERM)
        assert run.wait(15) == 0
        assert time.monotonic() - started < 8 + 2  # within the default grace, with slack
        assert namespace_members(ns) == {}
        for role in ("api", "background", "worker"):
            run.wait_for(rf"^{role} \| {role} got SIGTERM$", timeout=1)
    finally:
        run.cleanup()


def test_pid1_exit_code_of_a_failing_role_reaches_the_runtime(tmp_path: Path):
    env = base_env(tmp_path, STANDIN_BACKGROUND_EXIT_AFTER="1", STANDIN_BACKGROUND_EXIT_CODE="9")
    run = Run(
        ["unshare", "--pid", "--fork", "--mount-proc", *spiffctl("run", "--role", "all", "--no-wait")], env, tmp_path
    )
    try:
        assert run.wait(20) == 9
        run.wait_for(r"^spiffctl: background exited with code 9; stopping every role$", stream="err", timeout=1)
    finally:
        run.cleanup()


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_supervisords_own_words_are_json_lines_in_json_mode(tmp_path: Path, fmt: str):
    """A configuration supervisord refuses: its own "Error: ..." lines come out like a role's lines."""
    import json
    import subprocess
    import sys

    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    conf = folder / "supervisord.conf"
    conf.write_text("[supervisord]\nnodaemon=maybe\n")
    conf.chmod(0o600)
    env = {**os.environ, "SPIFFCTL_LOG_FORMAT": fmt}
    r = subprocess.run(
        [sys.executable, "-m", "spiffctl.allinone.pid1", str(conf)], env=env, capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 70 and r.stdout == ""
    if fmt == "text":  # unchanged: supervisord's text, then spiffctl's line
        assert r.stderr.splitlines()[0] == "Error: not a valid boolean value: 'maybe'"
        assert r.stderr.splitlines()[-1] == f"spiffctl: supervisord refused {conf} (exit 2)"
        return
    lines = [json.loads(line) for line in r.stderr.splitlines()]
    said = [line for line in lines if line["role"] == "supervisord"]
    assert said[0]["message"] == "Error: not a valid boolean value: 'maybe'" and said[0]["stream"] == "stderr"
    assert lines[-1]["level"] == "ERROR" and lines[-1]["message"] == f"supervisord refused {conf} (exit 2)"


def test_pid1_does_not_import_dataclasses():
    """A module-level import cost PID 1 about 1 MB for the whole run (bench/allinone.py P7)."""
    code = (
        "import sys; import supervisor.supervisord, supervisor.rpcinterface, supervisor.xmlrpc, supervisor.http; "
        "import spiffctl.allinone.pid1, spiffctl.allinone.listener, spiffctl.log.child; "
        "print('dataclasses' in sys.modules, 'typer' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
