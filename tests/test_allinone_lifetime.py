"""The all-in-one's lifetime (issue 16 items 4, 5 and 7): it dies with supervisord, a stalled stdout
never delays its stop, and a second one on the same run folder is refused with the documented line."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import termios
import threading
import time
from pathlib import Path

import pytest

from tests.standins import read_records
from tests.support.allinone import Run, base_env, records, running, spiffctl
from tests.support.poll import wait_until
from tests.support.procs import children_map, pid_alive, session_members

GRACE = 3
PIPE_FULL = 48_000  # bytes left unread in a 64 KiB pipe (16 pages, some part-filled): the writer is stalled


def descendants(root: int) -> set[int]:
    kids = children_map()
    found, todo = set(), [root]
    while todo:
        for child in kids.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def ready(record: Path, *roles: str) -> bool:
    done = {r["role"] for r in read_records(record) if r["event"] == "ready"}
    return set(roles) <= done


def test_kill_9_of_the_all_in_one_leaves_no_role_and_a_new_one_starts(tmp_path):
    env = base_env(tmp_path, STANDIN_SPAWN_CHILD="true", SPIFFCTL_STOP_GRACE=str(GRACE))
    with running(tmp_path, env, "--no-wait") as run:
        run.wait_for(r"^background \| standin background: started")
        wait_until(lambda: ready(tmp_path / "record", "api", "background"), 20)
        tree = descendants(run.pid) | {pid for _, _, pid in records(tmp_path)}
        assert len(tree) >= 5  # the watcher, two roles, their children, the lease's watchdog and script
        os.kill(run.pid, signal.SIGKILL)
        run.proc.wait(10)
        # The roles get SIGTERM (they stop at once), SIGKILL after the grace: the bound.
        wait_until(
            lambda: not any(pid_alive(p) for p in tree), GRACE + 5, what=lambda: [p for p in tree if pid_alive(p)]
        )
        run.wait_for("supervisord died; its roles were stopped", 5, stream="err")

    second = base_env(tmp_path, STANDIN_RECORD=str(tmp_path / "record2"))
    second["SPIFFWORKFLOW_BACKEND_PORT"] = env["SPIFFWORKFLOW_BACKEND_PORT"]  # the port must be free again
    with running(tmp_path, second, "--no-wait") as run:
        run.wait_for(r"^api \| api ready", 30)
        run.wait_for(r"^background \| standin background: started", 30)  # the lease was free too


def test_the_all_in_one_stops_when_whoever_started_it_dies(tmp_path):
    env = base_env(tmp_path, SPIFFCTL_STOP_GRACE=str(GRACE))
    # bash forks spiffctl (a command follows), so spiffctl's parent is this bash.
    command = " ".join(spiffctl("run", "--role", "all", "--no-wait")) + "; exit 0"
    run = Run(["bash", "-c", command], env, tmp_path)
    try:
        run.wait_for(r"^background \| standin background: started")
        wait_until(lambda: ready(tmp_path / "record", "api", "background"), 20)
        tree = descendants(run.pid)
        os.kill(run.pid, signal.SIGKILL)
        run.wait_for("stopping every role", 10, stream="err")  # a clean stop, not a kill
        wait_until(lambda: not any(pid_alive(p) for p in tree), GRACE + 5)
    finally:
        run.cleanup()


def unread(stream: object) -> int:
    buf = bytearray(4)
    fcntl.ioctl(stream.fileno(), termios.FIONREAD, buf)  # type: ignore[attr-defined]
    return int.from_bytes(buf, "little")


@pytest.mark.parametrize("stalled", ["stdout", "stdout and stderr"])
def test_a_stalled_stdout_never_delays_the_stop(tmp_path, stalled):
    env = base_env(tmp_path, SPIFFCTL_STOP_GRACE=str(GRACE), STANDIN_PRINT="chatty " * 150, STANDIN_PRINT_TIMES="2000")
    proc = subprocess.Popen(
        spiffctl("run", "--role", "all", "--no-wait"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    err: list[bytes] = []
    reader = None
    if stalled == "stdout":
        reader = threading.Thread(target=lambda: err.extend(iter(proc.stderr.readline, b"")), daemon=True)
        reader.start()
    try:
        wait_until(lambda: unread(proc.stdout) >= PIPE_FULL, 30)
        if stalled != "stdout":
            wait_until(lambda: unread(proc.stderr) >= PIPE_FULL, 30)
        wait_until(lambda: ready(tmp_path / "record", "api", "background"), 30)
        tree = descendants(proc.pid)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(GRACE + 10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the all-in-one did not stop within {GRACE + 10} s with {stalled} not read")
        took = time.monotonic() - started
        assert code == 0
        assert took <= GRACE + 2, took  # within the grace (plus a margin for a loaded machine)
        assert not [p for p in tree | set(session_members(proc.pid)) if pid_alive(p)]
        if reader is not None:
            reader.join(10)
            said = [line.decode() for line in err if b"not being read" in line or b"spiffctl: dropped" in line]
            assert said[0] == (
                "spiffctl: output to fd 1 is not being read; dropping what cannot be written (counted, total at exit)\n"
            )
            assert len(said) == 2 and said[1].startswith("spiffctl: dropped "), said
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        for pid in {pid for _, _, pid in records(tmp_path)}:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.stdout.close()
        proc.stderr.close()


def test_two_all_in_ones_started_at_once_on_one_run_folder_one_is_refused_with_78(tmp_path):
    env = base_env(tmp_path)
    runs = [Run(spiffctl("run", "--role", "all", "--no-wait"), env, tmp_path) for _ in range(2)]
    try:
        wait_until(lambda: any(r.proc.poll() is not None for r in runs), 30)
        (loser,) = [r for r in runs if r.proc.poll() is not None]
        (winner,) = [r for r in runs if r is not loser]
        assert loser.wait() == 78
        assert loser.lines("err") == [
            f"spiffctl: SPIFFCTL_RUN_DIR: an all-in-one spiffctl already runs with {env['SPIFFCTL_RUN_DIR']} "
            "(see `spiffctl status`); stop it or use another folder"
        ]
        winner.wait_for(r"^api \| api ready")
        assert winner.proc.poll() is None
    finally:
        for r in runs:
            r.cleanup()


def test_the_orphan_watcher_is_no_python_and_stops_the_groups_it_was_told_of():
    """POSIX sh, not a second interpreter: the end of its pipe still stops every group it knows,
    SIGKILL after the grace for one that ignores SIGTERM; a group dropped or never valid is left alone."""
    from spiffctl.allinone import orphans

    polite = subprocess.Popen(["sleep", "60"], start_new_session=True)
    stubborn = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 60 & wait; sleep 60"], start_new_session=True)
    dropped = subprocess.Popen(["sleep", "60"], start_new_session=True)
    watcher = orphans.Guard(0.5)
    try:
        assert b"python" not in Path(f"/proc/{watcher.process.pid}/maps").read_bytes().lower()
        for p in (polite, stubborn, dropped):
            watcher.adopt(p.pid)
        watcher.drop(dropped.pid)
        watcher._send(b"+12x")
        time.sleep(0.3)
        started = time.monotonic()
        os.close(watcher.fd)  # supervisord's end of the pipe, as when it dies
        assert watcher.process.wait(5) == 0
        assert 0.4 < time.monotonic() - started < 3
        assert polite.wait(1) == -signal.SIGTERM and stubborn.wait(1) == -signal.SIGKILL
        assert dropped.poll() is None
    finally:
        for p in (polite, stubborn, dropped):
            p.kill()
            p.wait()
