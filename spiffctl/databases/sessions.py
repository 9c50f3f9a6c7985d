"""What a kind's session lock and lease session look like, whatever the kind.

Session locks: named exclusive locks that live as long as one database session of spiffctl's own
(a server's advisory or named lock on spiffctl's connection; an ``flock`` on a file beside a file
database). Each is released by :meth:`SessionLock.close`, and, whatever happens to spiffctl
(SIGKILL, a crash), when its session ends: the server drops the session's locks when the
connection closes, the kernel drops the flock when the process's file descriptor closes.
:meth:`SessionLock.holder` names whoever holds the lock where the database can tell.

The Background lease on such a lock (:class:`LeaseSession`). What the Redis store keeps in keys, a
session keeps by existing: there is no expiry to renew, only a session to keep alive, and the
server ends it (and so the lease) when the holder's process dies, when the server restarts or
fails over, when an administrator terminates it, or when it stays idle longer than the TTL (each
kind sets the server's idle limit on its own session; a frozen holder is dropped that way).

Each kind answers five questions:

* ``acquire``: take the lock if it is free, with a new epoch and a verdict on how the previous
  lease ended (:class:`Acquisition`). The verdict is the hard part: the lock being free says only
  that the previous holder's session ended, not that its script is gone. The script is certainly
  gone when the previous holder *released* the lock (it releases only after its script exited) and
  nobody else held the lock since; each kind proves that in its own way (see its module). Without
  proof the runner waits one TTL before starting.
* ``holds``: does our session still hold the lock (the renewal);
* ``holder``: who holds it, for a standby's log and doctor;
* ``release``: give it up, leaving the proof behind; call only once the script is gone;
* ``close``: end the session (which releases the lock too, without proof).

Driver errors propagate; callers classify them with the kind's ``classify``.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Protocol

from spiffctl.lease.stores import Holder

# The lease's purpose, in names a server shows (a session's name, a lock's name).
LEASE_PURPOSE = "background"


class SessionLock(Protocol):
    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; never waits."""

    def holder(self) -> str | None:
        """Who holds the lock now, in words; ``None`` when nobody does."""

    def alive(self) -> bool:
        """Our session (and so our lock, once acquired) still exists."""

    def close(self) -> None:
        """Release the lock and end the session."""


@dataclass(frozen=True)
class Acquisition:
    epoch: int
    proven: bool  # the previous lease certainly ended with its script
    why: str


class LeaseSession(Protocol):
    def acquire(self) -> Acquisition | None:
        """Take the lock if it is free (never waits); ``None`` when someone holds it."""

    def holds(self) -> bool:
        """Our session still holds the lock."""

    def holder(self) -> Holder | None:
        """Who holds the lock now; ``None`` when nobody does."""

    def release(self) -> bool:
        """Release the lock with proof of a clean end, if we still hold it (True)."""

    def close(self) -> None: ...


def identity(purpose: str) -> str:
    """How a holder names itself: ``spiffctl migrate on <host> pid <pid>`` (63 characters at most:
    the shortest limit on a session's name among the kinds)."""
    return f"spiffctl {purpose} on {socket.gethostname()} pid {os.getpid()}"[:63]
