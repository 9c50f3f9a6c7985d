"""The lease on MySQL / MariaDB: ``GET_LOCK`` on the holder's session, ``UUID_SHORT()`` epochs.

Proof that the previous lease ended cleanly. ``UUID_SHORT()`` returns a server-wide counter
that grows by one per call. A holder releasing after its script exited draws one value ``r``,
takes a marker lock named ``<lock>:r:<r>``, releases the lease lock, and keeps its session (and
so the marker) for a moment (``linger``, spent in :meth:`MySQLSession.close`) before it closes.
A session that takes the lease lock draws its epoch ``e`` from the same counter at once; if the
marker ``<lock>:r:<e - 1>`` is held, the value drawn just before its own was the release, so
nobody took the lock in between (an acquirer draws its epoch before its script may start): proven.
Anything else (no marker: the holder died, or the standby polled after the linger; a gap:
someone else drew a value, another holder or an unrelated caller of ``UUID_SHORT()``) is not
proven, which only costs a TTL.

``wait_timeout`` is set to the TTL on every lease session, so the server drops a frozen
holder's session, and the lock with it, a TTL after its last renewal. The holder is named by
its connection id and client address (``IS_USED_LOCK`` and the process list); MySQL has no
per-session name another session could read without ``performance_schema``. Needs no table
and no privilege beyond connecting (a user always sees its own sessions in the process list).
"""

from __future__ import annotations

import math
import time

from spiffctl.config.settings import Endpoint
from spiffctl.dblock.mysql import NamedLock
from spiffctl.lease.db import PURPOSE, Acquisition
from spiffctl.lease.store import Holder

HOLDER_QUERY = "SELECT ID, HOST, COMMAND, TIME FROM information_schema.PROCESSLIST WHERE ID = IS_USED_LOCK(%s)"


class MySQLSession:
    def __init__(self, endpoint: Endpoint, name: str, ttl: float, *, timeout: float, linger: float) -> None:
        self.lock = NamedLock(endpoint, PURPOSE, timeout, name=name)
        self.name = name
        self.ttl = ttl
        self.linger = linger
        self.epoch = 0
        self.released_at: float | None = None
        self.lock.one("SET SESSION wait_timeout = %s", (max(1, math.ceil(ttl)),))

    def marker(self, value: int) -> str:
        return f"{self.name}:r:{value}"

    def acquire(self) -> Acquisition | None:
        if not self.lock.try_acquire():
            return None
        epoch = int(str(self.lock.one("SELECT UUID_SHORT()", ())))
        if self.lock.one("SELECT IS_USED_LOCK(%s)", (self.marker(epoch - 1),)) is not None:
            proven, why = True, "the previous holder released the lease just before"
        else:
            proven, why = False, "no proof that the previous holder released the lease (it may have died)"
        self.epoch = epoch
        return Acquisition(epoch, proven, why)

    def holds(self) -> bool:
        return self.lock.one("SELECT IS_USED_LOCK(%s) = CONNECTION_ID()", (self.name,)) == 1

    def holder(self) -> Holder | None:
        row = self.lock.row(HOLDER_QUERY, (self.name,))
        if row is None:
            return None
        connection, address, command, seconds = row
        idle = float(seconds or 0) if command == "Sleep" else 0.0
        return Holder(
            host=f"connection {connection} from {address}",
            pid=0,
            since=None,
            epoch=0,
            ttl_left=max(0.0, self.ttl - idle),
        )

    def release(self) -> bool:
        if not self.holds():
            return False
        value = int(str(self.lock.one("SELECT UUID_SHORT()", ())))
        self.lock.one("SELECT GET_LOCK(%s, 0)", (self.marker(value),))
        self.lock.unlock()
        self.released_at = time.monotonic()
        return True

    def close(self) -> None:
        if self.released_at is not None:
            # The marker lives as long as this session: give a polling standby time to see it.
            time.sleep(max(0.0, self.released_at + self.linger - time.monotonic()))
        self.lock.close()
