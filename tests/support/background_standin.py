"""Stand-in for the Background script's python, launched like ``uv run`` launches the real one.

``background_standin.py`` (the "uv" layer) starts ``background_standin.py worker`` (the "python" layer) in
the same process group and waits for it. The worker appends records to ``$STANDIN_RECORDS``, one
line each, written with O_APPEND so lines from several processes never interleave::

    start <monotonic> <pid> <epoch> <name>
    tick  <monotonic> <pid>          every TICK seconds while it runs (a frozen worker writes none)
    stop  <monotonic> <pid> <signal> on SIGTERM, then it dies by that signal like the real one

``STANDIN_EXIT_AFTER=<seconds>`` makes the worker exit by itself with code 3.

``STANDIN_SCRIPT_SHAPE=true`` (set by the script :func:`tests.support.replicas.write_backend` writes
for a backend with an app): before its ``start`` record the worker costs what the real
``bin/start_blocking_apscheduler`` costs before its scheduler runs: the schema wait's two app
starts, a sleep of ``STANDIN_SCRIPT_SLEEP`` seconds (default 1; the real one sleeps 100), one
more app start; an app start burns ``STANDIN_CREATE_APP_CPU`` CPU-seconds (default 1), like the
stand-in ``create_app()`` (tests/standins/site).

Why not the shared stand-in (tests/standins/): overlap is measured on these ticks (a frozen
worker writes none, so frozen time does not count as running), and the launcher layer must
behave like ``uv run`` (ignore SIGTERM, wait for its child, pass its exit status on), which is
what the fence has to get through. The shared stand-in models neither.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

TICK = 0.05


def record(line: str) -> None:
    fd = os.open(os.environ["STANDIN_RECORDS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def burn_cpu(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def script_shape() -> None:
    """The real script's way to its scheduler: schema wait (two app starts), sleep, app start."""
    app_start = float(os.environ.get("STANDIN_CREATE_APP_CPU") or 1.0)
    burn_cpu(2 * app_start)
    time.sleep(float(os.environ.get("STANDIN_SCRIPT_SLEEP") or 1.0))
    burn_cpu(app_start)


def worker() -> int:
    pid = os.getpid()

    def on_term(signum: int, _frame: object) -> None:
        record(f"stop {time.monotonic():.6f} {pid} {signum}")
        signal.signal(signum, signal.SIG_DFL)
        os.kill(pid, signum)

    signal.signal(signal.SIGTERM, on_term)
    if os.environ.get("STANDIN_SCRIPT_SHAPE") == "true":
        script_shape()
    epoch = os.environ.get("SPIFFCTL_LEASE_EPOCH", "?")
    record(f"start {time.monotonic():.6f} {pid} {epoch} {os.environ.get('STANDIN_NAME', '?')}")
    exit_after = float(os.environ.get("STANDIN_EXIT_AFTER") or "inf")
    started = time.monotonic()
    while time.monotonic() - started < exit_after:
        record(f"tick {time.monotonic():.6f} {pid}")
        time.sleep(TICK)
    record(f"stop {time.monotonic():.6f} {pid} 0")
    return 3


def launcher() -> int:
    # Like uv: pass SIGTERM on (the group signal already reached the worker) and wait for it.
    signal.signal(signal.SIGTERM, lambda *_: None)
    child = subprocess.Popen([sys.executable, __file__, "worker"])
    while True:
        try:
            code = child.wait()
        except InterruptedError:
            continue
        return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(worker() if sys.argv[1:] == ["worker"] else launcher())
