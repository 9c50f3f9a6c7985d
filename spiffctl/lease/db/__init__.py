"""The Background lease as a session lock in the backend's own database: one module per kind.

A lease here is a lock that lives as long as one database session of the holder's
(:mod:`spiffctl.dblock` gives the lock itself). What the Redis store keeps in keys, a session
keeps by existing: there is no expiry to renew, only a session to keep alive, and the server ends
it (and so the lease) when the holder's process dies, when the server restarts or fails over, when
an administrator terminates it, or when it stays idle longer than the TTL (each kind sets the
server's idle limit on its own session; a frozen holder is dropped that way).

Each kind answers five questions (:class:`Session`):

* ``acquire``: take the lock if it is free, with a new epoch and a verdict on how the previous
  lease ended (:class:`Acquisition`). The verdict is the hard part: the lock being free says only
  that the previous holder's session ended, not that its script is gone. The script is certainly
  gone when the previous holder *released* the lock (it releases only after its script exited) and
  nobody else held the lock since; each kind proves that in its own way (PostgreSQL: a
  ``LISTEN``/``NOTIFY`` history; MySQL: consecutive ``UUID_SHORT()`` values and a marker lock;
  SQLite: the lock file's last line). Without proof the runner waits one TTL before starting.
* ``holds``: does our session still hold the lock (the renewal);
* ``holder``: who holds it, for a standby's log and doctor;
* ``release``: give it up, leaving the proof behind; call only once the script is gone;
* ``close``: end the session (which releases the lock too, without proof).

Driver errors propagate; :mod:`spiffctl.lease.db_store` classifies them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from spiffctl.config.settings import Endpoint
from spiffctl.lease.store import Holder

PURPOSE = "background"


@dataclass(frozen=True)
class Acquisition:
    epoch: int
    proven: bool  # the previous lease certainly ended with its script
    why: str


class Session(Protocol):
    def acquire(self) -> Acquisition | None:
        """Take the lock if it is free (never waits); ``None`` when someone holds it."""

    def holds(self) -> bool:
        """Our session still holds the lock."""

    def holder(self) -> Holder | None:
        """Who holds the lock now; ``None`` when nobody does."""

    def release(self) -> bool:
        """Release the lock with proof of a clean end, if we still hold it (True)."""

    def close(self) -> None: ...


def lock_name(key: str) -> str:
    """The lock's name for ``SPIFFCTL_LOCK_KEY``: short enough for MySQL's 64 characters with a
    suffix (:mod:`.mysql` adds one), and a distinct space from the migration lock's names."""
    return f"spiffctl:lease:{hashlib.sha256(key.encode()).hexdigest()[:24]}"


def open_session(
    endpoint: Endpoint, key: str, ttl: float, *, timeout: float, host: str, pid: int, linger: float
) -> Session:
    """A session on ``endpoint``'s database (connects now, so an unreachable one raises at once)."""
    if endpoint.kind == "postgres":
        from spiffctl.lease.db.postgres import PostgresSession

        return PostgresSession(endpoint, lock_name(key), ttl, timeout=timeout, host=host, pid=pid)
    if endpoint.kind == "mysql":
        from spiffctl.lease.db.mysql import MySQLSession

        return MySQLSession(endpoint, lock_name(key), ttl, timeout=timeout, linger=linger)
    if endpoint.kind == "sqlite":
        from spiffctl.lease.db.sqlite import SQLiteSession

        return SQLiteSession(endpoint, lock_name(key), ttl, host=host, pid=pid)
    raise ValueError(f"no database lease for {endpoint.kind}")
