"""Stand-in for ``start_apscheduler``: the scheduler's jobs, recorded like tests/support/background_standin.py's worker.

Records (``$STANDIN_RECORDS``, one O_APPEND line each): ``start <monotonic> <pid> <epoch> <name>``
once, ``tick <monotonic> <pid>`` every 0.05 s, and with ``STANDIN_APP_DB=true`` one
``job <monotonic> <pid> ok|failed:<error>`` per database job (every 0.2 s; the first at once) on
a pooled connection of ``db.engine``.
"""

from __future__ import annotations

import os
import time
from typing import Any

from spiffworkflow_backend.models.db import db

TICK = 0.05


def _record(line: str) -> None:
    path = os.environ.get("STANDIN_RECORDS")
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def start_apscheduler(app: Any, scheduler_class: Any) -> None:
    pid = os.getpid()
    epoch = os.environ.get("SPIFFCTL_LEASE_EPOCH", "?")
    _record(f"start {time.monotonic():.6f} {pid} {epoch} {os.environ.get('STANDIN_NAME', '?')}")
    scheduler = scheduler_class()
    scheduler.add_job(lambda: _record(f"tick {time.monotonic():.6f} {pid}"), "interval", seconds=TICK)
    if os.environ.get("STANDIN_APP_DB") == "true":

        def job() -> None:
            from sqlalchemy import text

            try:
                with app.app_context(), db.engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                outcome = "ok"
            except Exception as e:
                outcome = "failed:" + type(e).__name__
            _record(f"job {time.monotonic():.6f} {pid} {outcome}")

        scheduler.add_job(job, "interval", seconds=0.2)
    scheduler.start()
