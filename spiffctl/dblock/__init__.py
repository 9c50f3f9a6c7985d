"""Named exclusive locks that live as long as one database session of spiffctl's own.

One interface, one small module per database kind:

* PostgreSQL: a session-level advisory lock, ``pg_try_advisory_lock(key)``, on a bigint key
  derived from the lock's name (advisory keys are scoped to the database already);
* MySQL / MariaDB: ``GET_LOCK(name, 0)``;
* SQLite: ``flock(LOCK_EX | LOCK_NB)`` on a lock file beside the database file (one host only:
  flock does not reach across network filesystems).

Each is released by :meth:`SessionLock.close`, and, whatever happens to spiffctl (SIGKILL, a
crash), when its session ends: the server drops the session's locks when the connection closes,
the kernel drops the flock when the process's file descriptor closes. :meth:`SessionLock.holder`
names whoever holds the lock where the database can tell (PostgreSQL: the holder's
``application_name``, address and connection time; MySQL: its connection id and address;
SQLite: what the holder wrote into the lock file).

Errors from the driver propagate; callers classify them with the probe modules.
"""

from __future__ import annotations

import hashlib
import os
import socket
from typing import Protocol

from spiffctl.config.settings import Endpoint


class SessionLock(Protocol):
    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; never waits."""

    def holder(self) -> str | None:
        """Who holds the lock now, in words; ``None`` when nobody does."""

    def alive(self) -> bool:
        """Our session (and so our lock, once acquired) still exists."""

    def close(self) -> None:
        """Release the lock and end the session."""


def identity(purpose: str) -> str:
    """How a holder names itself: ``spiffctl migrate on <host> pid <pid>`` (63 characters at most:
    PostgreSQL's limit for application_name)."""
    return f"spiffctl {purpose} on {socket.gethostname()} pid {os.getpid()}"[:63]


def key64(name: str) -> int:
    """A signed 64-bit key for ``name``: PostgreSQL's advisory locks take a bigint."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def open_lock(endpoint: Endpoint, purpose: str, timeout: float) -> SessionLock:
    """A lock named after ``purpose`` and the database of ``endpoint``; connects now.

    The connection (PostgreSQL, MySQL) is made here, so an unreachable database raises at once.
    """
    if endpoint.kind == "postgres":
        from spiffctl.dblock.postgres import AdvisoryLock

        return AdvisoryLock(endpoint, purpose, timeout)
    if endpoint.kind == "mysql":
        from spiffctl.dblock.mysql import NamedLock

        return NamedLock(endpoint, purpose, timeout)
    if endpoint.kind == "sqlite":
        from spiffctl.dblock.sqlite import FileLock

        return FileLock(endpoint, purpose)
    raise ValueError(f"no session lock for {endpoint.kind}")
