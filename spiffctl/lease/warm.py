"""The warm child: the backend's app, created ahead of time, waiting for the lease to start its scheduler.

Run by path with the backend venv's interpreter (``<backend root>/.venv/bin/python warm.py CONTROL
REPORT``, cwd the backend root), started by the watchdog (``--warm``), which is its parent and
fences it like the script. Standard library only: spiffctl is not installed in the backend's venv.

It does what ``bin/start_blocking_apscheduler.py`` does after its sleep, split in two:

1. at once: import the three entry points and ``create_app()``; then write ``loaded`` on the
   REPORT fd (or ``failed <reason>``, or ``unusable <reason>`` when an import fails: spiffctl
   then runs the script instead), and wait;
2. on the line ``go <epoch>`` on the CONTROL fd: drop the app's pooled database connections
   (they may have gone stale during days of waiting), then ``start_apscheduler(app.app,
   BlockingScheduler)``, which blocks.

``warm.py --now SCRIPT [json|text]`` (exec'd by spiffctl when the lease is off): import,
``create_app()`` and ``start_apscheduler`` at once; without the entry points, exec SCRIPT. Its own
lines take the format spiffctl was asked for (``SPIFFCTL_LOG_FORMAT``, decided by spiffctl).

Otherwise it never starts the scheduler on its own, and it exits as soon as CONTROL reaches end of file
(its watchdog is gone): whatever it was doing, loading, waiting or scheduling.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

EPOCH_VAR = "SPIFFCTL_LEASE_EPOCH"
UNUSABLE = 3  # exit code: an entry point is missing
FAILED = 1  # exit code: create_app() raised


class Channel:
    """The CONTROL fd read in a thread: ``go`` is kept for the main thread, end of file ends us."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.go = threading.Event()
        self.epoch = ""

    def start(self) -> None:
        threading.Thread(target=self._read, name="spiffctl-channel", daemon=True).start()

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                data = os.read(self.fd, 512)
            except InterruptedError:
                continue
            except OSError:
                data = b""
            if not data:
                os._exit(0)  # spiffctl's watchdog is gone: nobody may fence us any more
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                words = line.decode(errors="replace").split()
                if words[:1] == ["go"]:
                    self.epoch = words[1] if len(words) > 1 else ""
                    self.go.set()


def _one_line(error: BaseException) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())[:300]


def _report(fd: int, line: str) -> None:
    try:
        os.write(fd, (line + "\n").encode())
    except OSError:
        pass  # the watchdog is gone; the channel's end of file ends us


def _entry_points() -> tuple[Any, Any, Any, Any]:
    """``create_app``, ``start_apscheduler``, ``BlockingScheduler``, ``db``; ImportError when one is missing."""
    from apscheduler.schedulers.background import BlockingScheduler  # type: ignore[import-not-found]
    from spiffworkflow_backend import create_app  # type: ignore[import-not-found]
    from spiffworkflow_backend.background_processing.apscheduler import (  # type: ignore[import-not-found]
        start_apscheduler,
    )
    from spiffworkflow_backend.models.db import db  # type: ignore[import-not-found]

    return create_app, start_apscheduler, BlockingScheduler, db


def _say(fmt: str, message: str, event: str, **fields: object) -> None:
    """One of spiffctl's own lines, in the format spiffctl chose (the fields of spiffctl.log's)."""
    if fmt != "json":
        print(f"spiffctl: {message}", file=sys.stderr, flush=True)
        return
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
    record: dict[str, object] = {"timestamp": stamp, "level": "INFO", "logger": "spiffctl", "message": message}
    record |= {"role": os.environ.get("SPIFFCTL_ROLE") or None, "event": event, **fields}
    print(json.dumps(record, ensure_ascii=False), file=sys.stderr, flush=True)


def now(script: str, fmt: str = "text") -> int:
    """No lease (one Background on this box, e.g. the all-in-one): the scheduler after one app start.

    spiffctl execs us in its place instead of the script; without the entry points we exec the script."""
    try:
        create_app, start_apscheduler, BlockingScheduler, _db = _entry_points()
    except ImportError as e:
        reason = _one_line(e)
        _say(fmt, f"warm start is not possible ({reason}); running {script} instead", "warm-fallback", reason=reason)
        os.execv(script, [script])
    message = "starting the scheduler after one app start (warm start, no lease)"
    _say(fmt, message, "started", pid=os.getpid(), warm=True)
    start_apscheduler(create_app().app, BlockingScheduler)
    return 0


def main(argv: list[str]) -> int:
    if argv[1] == "--now":
        return now(argv[2], *argv[3:4])
    control, report = int(argv[1]), int(argv[2])
    channel = Channel(control)
    channel.start()
    try:
        create_app, start_apscheduler, BlockingScheduler, db = _entry_points()
    except ImportError as e:
        _report(report, f"unusable {_one_line(e)}")
        return UNUSABLE
    try:
        app = create_app()  # may also fail on a module imported late, which is worth a retry
    except Exception as e:
        _report(report, f"failed {_one_line(e)}")
        return FAILED
    _report(report, "loaded")
    channel.go.wait()
    os.environ[EPOCH_VAR] = channel.epoch
    # Pooled connections made while loading may be dead by now (server restarted, sessions
    # terminated, idle timeouts): the scheduler's first jobs get fresh ones.
    with app.app.app_context():
        db.engine.dispose()
    start_apscheduler(app.app, BlockingScheduler)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
