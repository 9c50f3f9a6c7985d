"""Running ``spiffctl run --role all`` against the stand-in bin scripts, and cleaning up after it.

Every run starts in its own session, so cleanup can find and kill every process it left (and the
stand-ins record the pids of the orphans that leave the session).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.standins import BACKEND_TEMPLATE as BACKEND
from tests.standins import at_head, copy_backend, give_venv, read_records
from tests.support.ports import free_port
from tests.support.procs import pid_alive, session_members


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    run_dir = tmp_path / "run"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "SPIFFCTL_RUN_DIR": str(run_dir),
        "SPIFFCTL_BACKEND_DIR": str(BACKEND),
        "FLASK_SESSION_SECRET_KEY": "a-long-random-session-key",
        "SPIFFWORKFLOW_BACKEND_BPMN_SPEC_ABSOLUTE_DIR": str(tmp_path),
        "SPIFFWORKFLOW_BACKEND_DATABASE_URI": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "SPIFFWORKFLOW_BACKEND_PORT": str(free_port()),  # the API stand-in listens there
        "STANDIN_RECORD": str(tmp_path / "record"),
    }
    env.update(extra)
    return env


def warm_env(root: Path, **extra: str) -> dict[str, str]:
    """:func:`base_env` on a copy of the stand-in backend whose venv has the stand-in app, so the
    Background starts warm; the schema at head. Scheduler starts: :func:`scheduler_starts`."""
    backend = copy_backend(root / "backend")
    give_venv(backend, site=True)
    env = base_env(root, SPIFFCTL_BACKEND_DIR=str(backend), STANDIN_RECORDS=str(root / "records.txt"), **extra)
    at_head(env["SPIFFWORKFLOW_BACKEND_DATABASE_URI"])
    return env


def scheduler_starts(root: Path) -> list[float]:
    """When the stand-in app's scheduler started (monotonic), for an env from :func:`warm_env`."""
    path = root / "records.txt"
    lines = path.read_text().splitlines() if path.exists() else []
    return [float(ln.split()[1]) for ln in lines if ln.startswith("start ")]


def spiffctl(*args: str) -> list[str]:
    return [sys.executable, "-m", "spiffctl", *args]


def records(tmp_path: Path) -> list[tuple[str, str, int]]:
    """(role, "start" | "child" | "orphan", pid) for every process the stand-ins started."""
    out = []
    for r in read_records(tmp_path / "record"):
        if r["event"] != "start":
            continue
        role, _, kind = r["role"].partition("-")
        out.append((role, kind or "start", r["pid"]))
    return out


class Run:
    """A running ``spiffctl`` whose stdout and stderr lines are collected as they come."""

    def __init__(self, args: list[str], env: dict[str, str], tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.proc = subprocess.Popen(
            args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._cond = threading.Condition()
        self._threads = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _read(self, stream, sink: list[str]) -> None:
        for raw in iter(stream.readline, b""):
            with self._cond:
                sink.append(raw.decode(errors="replace").rstrip("\n"))
                self._cond.notify_all()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def lines(self, stream: str = "both") -> list[str]:
        with self._cond:
            if stream == "out":
                return list(self.out)
            if stream == "err":
                return list(self.err)
            return [*self.out, *self.err]

    def wait_for(self, pattern: str, timeout: float = 20.0, stream: str = "both") -> str:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                sink = self.out if stream == "out" else self.err if stream == "err" else [*self.out, *self.err]
                for line in sink:
                    if regex.search(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not any(t.is_alive() for t in self._threads)):
                    raise AssertionError(f"no line matching {pattern!r}; output:\n" + "\n".join([*self.out, *self.err]))
                self._cond.wait(min(left, 0.2))

    def wait(self, timeout: float = 30.0) -> int:
        code = self.proc.wait(timeout)
        for t in self._threads:
            t.join(5)
        return code

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def cleanup(self) -> None:
        """Kill whatever is left: the session, recorded pids, then reap."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(12)
            except subprocess.TimeoutExpired:
                pass
        pids = set(session_members(self.proc.pid)) | {pid for _, _, pid in records(self.tmp_path)}
        for pid in pids:
            if pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


@contextmanager
def running(tmp_path: Path, env: dict[str, str], *args: str) -> Iterator[Run]:
    run = Run(spiffctl("run", "--role", "all", *args), env, tmp_path)
    try:
        yield run
    finally:
        run.cleanup()
