"""The lease on SQLite: an exclusive ``flock`` on ``<database>.spiffctl-lease-<key hash>.lock``.

One host only, like SQLite itself here: every replica must reach the same file through the same
kernel (``flock`` does not work across hosts on NFS and other network filesystems). The kernel
drops the lock when the holder's process dies. The file says what happened last, one JSON line:
``{"state": "held", "epoch": N, "host": ..., "pid": ..., "since": ...}`` while held, and
``{"state": "released", "epoch": N}`` after a clean release (written after the script exited,
before the unlock). A new holder reads it under the lock: only ``released`` proves the previous
lease ended. ``held`` means its holder died holding it; an empty, missing or unreadable record
proves nothing either (first use, or a hand deleted or emptied the file while a holder ran: a
new file is a new lock, free at once): both wait one TTL. Epochs count up in the file.

A hand on the file. The holder checks at every renewal that the path still names the file it
locked and that the file still holds its own record; otherwise it fences (and writes its record
back first, so a rewritten ``released`` line proves nothing to the next holder). An acquirer
whose descriptor names a file that was deleted or replaced opens the path again, so two
processes never hold locks on two different files at once for long.

There is no server to drop a frozen holder: a holder that is frozen (SIGSTOP) keeps the lock
until it resumes; its script is fenced at its deadline all the same.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from spiffctl.config.settings import Endpoint
from spiffctl.dblock.sqlite import FileLock
from spiffctl.lease.db import Acquisition
from spiffctl.lease.store import Holder


class SQLiteSession:
    def __init__(self, endpoint: Endpoint, name: str, ttl: float, *, host: str, pid: int) -> None:
        # The file is named after the lock (so after SPIFFCTL_LOCK_KEY), like the other kinds' locks.
        self.endpoint = endpoint
        self.purpose = f"lease-{name.rsplit(':', 1)[-1][:12]}"
        self.lock = FileLock(endpoint, self.purpose)
        self.path = self.lock.path
        self.ttl = ttl
        self.host = host
        self.pid = pid
        self.epoch = 0
        self.held = False

    def _record(self, fd: int) -> dict[str, Any]:
        try:
            data = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace") or "{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, Any]) -> None:
        os.ftruncate(self.lock.fd, 0)
        os.pwrite(self.lock.fd, (json.dumps(data) + "\n").encode(), 0)
        os.fsync(self.lock.fd)

    def _current(self) -> bool:
        """The path still names the file our descriptor has open (nobody deleted or replaced it)."""
        try:
            there = os.stat(self.path)
        except FileNotFoundError:
            return False
        ours = os.fstat(self.lock.fd)
        return (there.st_dev, there.st_ino) == (ours.st_dev, ours.st_ino)

    def _ours(self) -> dict[str, Any]:
        return {"state": "held", "epoch": self.epoch, "host": self.host, "pid": self.pid}

    def acquire(self) -> Acquisition | None:
        if not self._current():
            self.lock.close()  # a lock on a file nobody else can find any more protects nothing
            self.lock = FileLock(self.endpoint, self.purpose)
        if not self.lock.try_flock():
            return None
        last = self._record(self.lock.fd)
        previous = last.get("epoch")
        previous = previous if isinstance(previous, int) else 0
        self.epoch = previous + 1
        self._write({**self._ours(), "since": time.time()})
        self.held = True
        if last.get("state") == "released":
            return Acquisition(self.epoch, True, f"epoch {previous} was released cleanly")
        if not last:
            return Acquisition(
                self.epoch, False, f"{self.path} records no earlier holder (first use, or deleted or emptied by hand)"
            )
        return Acquisition(self.epoch, False, f"the holder of epoch {previous} died holding the lease")

    def holds(self) -> bool:
        if not self.held:
            return False
        record = self._record(self.lock.fd)
        if self._current() and {k: record.get(k) for k in self._ours()} == self._ours():
            return True
        # Deleted, replaced or rewritten by hand: fence. Our record back in our file first, so
        # whoever locks it next waits one TTL instead of trusting what the hand wrote.
        self._write({**self._ours(), "since": record.get("since")})
        return False

    def holder(self) -> Holder | None:
        if self.held:
            record = self._record(self.lock.fd)
        else:
            text = self.lock.holder_text()
            if text is None:
                return None
            try:
                record = json.loads(text)
            except ValueError:
                record = {}
        host, pid, since, epoch = (record.get(k) for k in ("host", "pid", "since", "epoch"))
        return Holder(
            host=host if isinstance(host, str) else "another process on this host",
            pid=pid if isinstance(pid, int) else 0,
            since=float(since) if isinstance(since, (int, float)) else None,
            epoch=epoch if isinstance(epoch, int) else 0,
            ttl_left=self.ttl,  # no expiry: the lock lasts as long as its holder's process
        )

    def release(self) -> bool:
        if not self.held:
            return False
        self._write({"state": "released", "epoch": self.epoch})
        self.lock.unlock()
        self.held = False
        return True

    def close(self) -> None:
        self.lock.close()
