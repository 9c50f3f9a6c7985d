"""MySQL / MariaDB: ``GET_LOCK(name, 0)`` on spiffctl's own connection.

Lock names are limited to 64 characters; a long database name is hashed into the name.
``IS_USED_LOCK`` gives the holder's connection id and ``information_schema.PROCESSLIST`` its
client address (a connection of the same user is always visible; others need the PROCESS
privilege). Neither tells when the lock was taken.
"""

from __future__ import annotations

import hashlib
from typing import Any

from spiffctl.config.settings import Endpoint
from spiffctl.dblock.server import ServerLock
from spiffctl.probes import mysql

HOLDER_QUERY = "SELECT ID, HOST FROM information_schema.PROCESSLIST WHERE ID = IS_USED_LOCK(%s)"


def lock_name(purpose: str, database: str) -> str:
    name = f"spiffctl:{purpose}:{database}"
    if len(name) <= 64:
        return name
    return f"spiffctl:{purpose}:{hashlib.sha256(database.encode()).hexdigest()[:32]}"


class NamedLock(ServerLock):
    def __init__(self, endpoint: Endpoint, purpose: str, timeout: float, *, name: str | None = None) -> None:
        self.name = name or lock_name(purpose, endpoint.parts.path)
        self.conn: Any = mysql.connect(endpoint, timeout)
        # Autocommit: a poll on this connection must not read an old snapshot (REPEATABLE READ).
        self.conn.autocommit(True)

    def try_acquire(self) -> bool:
        return self.one("SELECT GET_LOCK(%s, 0)", (self.name,)) == 1

    def holder(self) -> str | None:
        row = self.row(HOLDER_QUERY, (self.name,))
        if row is None:
            return None
        connection, address = row
        return f"connection {connection} from {address}"

    def unlock(self) -> None:
        self.one("SELECT RELEASE_LOCK(%s)", (self.name,))
