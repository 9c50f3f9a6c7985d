"""SQLite: ``flock`` on ``<database file>.spiffctl-<purpose>.lock``, beside the database file.

One host only: every replica must see the same file through the same kernel (flock is not
reliable over NFS and similar network filesystems). The holder writes who it is into the file,
so a waiter can name it; the content is never trusted for anything else.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from spiffctl.config.settings import Endpoint
from spiffctl.dblock import identity
from spiffctl.probes.sqlite import path_of


def lock_path(endpoint: Endpoint, purpose: str) -> Path:
    db = path_of(endpoint)
    if db is None:
        raise ValueError("an in-memory SQLite database has no file to lock beside")
    return db.with_name(f"{db.name}.spiffctl-{purpose}.lock")


class FileLock:
    def __init__(self, endpoint: Endpoint, purpose: str) -> None:
        self.purpose = purpose
        self.path = lock_path(endpoint, purpose)
        # The backend creates the instance folder at its first start; the lock may come first.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)

    def try_acquire(self) -> bool:
        if not self.try_flock():
            return False
        since = time.strftime("%H:%M:%S UTC", time.gmtime())
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{identity(self.purpose)}, since {since}\n".encode(), 0)
        return True

    def try_flock(self) -> bool:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def holder(self) -> str | None:
        text = self.holder_text()
        if text is None:
            return None
        return text or "another process on this host"

    def holder_text(self) -> str | None:
        """What the holder wrote into the file; ``None`` when nobody holds the lock."""
        probe = os.open(self.path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return os.pread(probe, 4096, 0).decode("utf-8", "replace").strip()
            fcntl.flock(probe, fcntl.LOCK_UN)
            return None
        finally:
            os.close(probe)

    def unlock(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)

    def alive(self) -> bool:
        return True  # the lock lives in our own file descriptor

    def close(self) -> None:
        try:
            os.close(self.fd)  # closing the descriptor drops the flock
        except OSError:
            pass
