"""The lease on PostgreSQL: a session-level advisory lock, a ``LISTEN``/``NOTIFY`` history.

Proof that the previous lease ended cleanly. Every session of the lease (standbys included)
``LISTEN``\\s on a channel of its own lock's key from the moment it connects. A holder notifies
``acquired <epoch>`` right after taking the lock, before its script may start, and
``released <epoch>`` after its script has exited and before it unlocks. PostgreSQL delivers
every notification committed while a session listens, in commit order, and a session that
finds the lock free has been delivered every notification committed before the unlock it
follows. So, when a session takes the lock, the last event in its history decides:

* ``released E``: the latest holder released after its script exited, and nobody took the lock
  since (they would have notified ``acquired``): proven;
* ``acquired E``: someone took the lock after the last clean release and its session ended
  without releasing (killed, terminated, dropped as idle): its script may still run until its own
  deadline, so not proven;
* nothing: this session has not watched long enough (first start, reconnected after a restart or
  failover, which a notification history does not survive): not proven.

Any session of any user of the database may ``NOTIFY`` on the channel, so a hand (or a stray
program) could send ``released E``. A release counts only when it comes from a backend this
session saw holding the lock (its ``acquired`` notification, or the holder query of a standby's
poll), by the notifying backend's pid; anything else is not proven.

Epochs are ``txid_current()`` at acquisition: they grow across restarts and on promoted replicas.
The holder names itself in ``application_name`` (``spiffctl bg epoch E pid P host``), which
``pg_stat_activity`` shows to standbys and to doctor. ``idle_session_timeout`` (PostgreSQL 14
and later) is set to the TTL on every lease session, so the server drops a frozen holder's
session, and with it the lock, a TTL after its last renewal; on older servers a frozen holder
keeps the lock until it resumes (its script is fenced anyway).

Needs no table and no privilege beyond connecting: advisory locks, ``LISTEN`` and
``pg_stat_activity`` of sessions of the same user are open to every user. Not through a
transaction-mode pooler (PgBouncer ``pool_mode=transaction``): a session lock needs a session.
"""

from __future__ import annotations

import re

from spiffctl.config.settings import Endpoint
from spiffctl.dblock.postgres import AdvisoryLock
from spiffctl.lease.db import PURPOSE, Acquisition
from spiffctl.lease.store import Holder

_DATABASE = "(SELECT oid FROM pg_database WHERE datname = current_database())"

HOLDS_QUERY = f"""
SELECT EXISTS (SELECT 1 FROM pg_locks
               WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND pid = pg_backend_pid()
                 AND classid::bigint = %s AND objid::bigint = %s AND database = {_DATABASE})
"""

# The holding session: its name, address, and seconds idle (0 while it runs a query).
HOLDER_QUERY = f"""
SELECT a.pid, a.application_name, coalesce(host(a.client_addr), 'the local socket'),
       CASE WHEN a.state = 'idle' THEN extract(epoch FROM clock_timestamp() - a.state_change) ELSE 0 END
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.classid::bigint = %s AND l.objid::bigint = %s AND l.database = {_DATABASE}
"""

NAME = re.compile(r"^spiffctl bg epoch (\d+) pid (\d+) (.*)$")


class PostgresSession:
    def __init__(self, endpoint: Endpoint, name: str, ttl: float, *, timeout: float, host: str, pid: int) -> None:
        self.lock = AdvisoryLock(endpoint, PURPOSE, timeout, name=name)
        self.conn = self.lock.conn
        self.key = self.lock.key
        self.ttl = ttl
        self.host = host
        self.pid = pid
        self.epoch = 0
        # Channel names are identifiers: hex digits keep this one safe to splice in.
        self.channel = f"spiffctl_{self.key & 0xFFFF_FFFF_FFFF_FFFF:016x}"
        self.events: list[tuple[str, int]] = []  # (payload, the notifying backend's pid)
        self.holders: set[int] = set()  # backends this session saw holding the lock
        self.conn.add_notify_handler(lambda n: self.events.append((n.payload, n.pid)))
        self.conn.execute(f"LISTEN {self.channel}")
        if int(str(self.lock.one("SELECT current_setting('server_version_num')", ()))) >= 140000:
            self.conn.execute("SELECT set_config('idle_session_timeout', %s, false)", (str(int(ttl * 1000)),))

    def acquire(self) -> Acquisition | None:
        if not self.lock.try_acquire():
            return None
        # A query after the lock's: notifications reach the client between commands.
        epoch = int(str(self.lock.one("SELECT txid_current()", ())))
        proven, why = judge(self.events, self.holders)
        self.events.clear()
        name = f"spiffctl bg epoch {epoch} pid {self.pid} {self.host}"[:63]
        self.conn.execute(
            "SELECT pg_notify(%s, %s), set_config('application_name', %s, false)",
            (self.channel, f"acquired {epoch}", name),
        )
        self.epoch = epoch
        return Acquisition(epoch, proven, why)

    def holds(self) -> bool:
        return bool(self.lock.one(HOLDS_QUERY, self.lock.halves))

    def holder(self) -> Holder | None:
        row = self.lock.row(HOLDER_QUERY, self.lock.halves)
        if row is None:
            return None
        self.holders.add(int(row[0]))
        name, address, idle = str(row[1] or ""), str(row[2]), float(row[3] or 0)
        left = max(0.0, self.ttl - idle)
        found = NAME.match(name)
        if found is None:  # a session that took the lock but has not named itself yet
            return Holder(host=f"a session from {address}", pid=0, since=None, epoch=0, ttl_left=left)
        epoch, pid, host = found.groups()
        return Holder(host=host, pid=int(pid), since=None, epoch=int(epoch), ttl_left=left)

    def release(self) -> bool:
        if not self.holds():
            return False
        self.conn.execute("SELECT pg_notify(%s, %s)", (self.channel, f"released {self.epoch}"))
        self.lock.unlock()
        return True

    def close(self) -> None:
        self.lock.close()


def judge(events: list[tuple[str, int]], holders: set[int]) -> tuple[bool, str]:
    """How the previous lease ended, from the last event this session saw (see the module's doc)."""
    if not events:
        return False, "no release seen since this replica started watching the lease"
    (what, _, epoch), pid = events[-1][0].partition(" "), events[-1][1]
    if what == "released":
        acquirers = {p for payload, p in events if payload.startswith("acquired ")}
        if pid in holders | acquirers:
            return True, f"epoch {epoch} was released cleanly"
        return False, f"a release of epoch {epoch} came from a session never seen holding the lease (by hand?)"
    return False, f"the session of epoch {epoch} ended without releasing the lease"
