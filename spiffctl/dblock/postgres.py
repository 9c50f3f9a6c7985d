"""PostgreSQL: a session-level advisory lock on spiffctl's own connection.

The key is a bigint derived from the lock's purpose and the database name. ``pg_locks`` shows an
advisory lock on a bigint key as ``classid`` = its high 32 bits and ``objid`` = its low 32 bits
(``objsubid`` 1), which is how :meth:`AdvisoryLock.holder` finds the holding session, and
``pg_stat_activity`` tells its ``application_name`` (spiffctl sets it to name itself), client
address and connection time. A session of the same database user sees all of that; other users
may see only part of it.
"""

from __future__ import annotations

from typing import Any

from spiffctl.config.settings import Endpoint
from spiffctl.dblock import identity, key64
from spiffctl.dblock.server import ServerLock
from spiffctl.probes import postgres

# The holding session, if any (granted: a waiter would appear too, with granted = false).
HOLDER_QUERY = """
SELECT coalesce(nullif(a.application_name, ''), 'a session without a name'),
       coalesce(host(a.client_addr), 'the local socket'),
       to_char(a.backend_start AT TIME ZONE 'UTC', 'HH24:MI:SS')
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.classid::bigint = %s AND l.objid::bigint = %s
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


class AdvisoryLock(ServerLock):
    def __init__(self, endpoint: Endpoint, purpose: str, timeout: float, *, name: str | None = None) -> None:
        self.key = key64(name or f"spiffctl:{purpose}:{endpoint.parts.path}")
        # pg_locks shows the key's halves as unsigned 32-bit oids.
        unsigned = self.key & 0xFFFF_FFFF_FFFF_FFFF
        self.halves = (unsigned >> 32, unsigned & 0xFFFF_FFFF)
        self.conn: Any = postgres.connect(endpoint, timeout, application_name=identity(purpose))

    def try_acquire(self) -> bool:
        return bool(self.one("SELECT pg_try_advisory_lock(%s)", (self.key,)))

    def holder(self) -> str | None:
        row = self.row(HOLDER_QUERY, self.halves)
        if row is None:
            return None
        name, address, since = row
        return f"{name} from {address}, connected since {since} UTC"

    def unlock(self) -> None:
        self.one("SELECT pg_advisory_unlock(%s)", (self.key,))
