"""MySQL / MariaDB: ``GET_LOCK(name, 0)`` on spiffctl's own connection.

Lock names are limited to 64 characters; a long database name is hashed into the name.
``IS_USED_LOCK`` gives the holder's connection id and ``information_schema.PROCESSLIST`` its
client address (a connection of the same user is always visible; others need the PROCESS
privilege). Neither tells when the lock was taken.
"""

from __future__ import annotations

import hashlib
from typing import Any

from spiffctl.probes import mysql
from spiffctl.settings import Endpoint

HOLDER_QUERY = "SELECT ID, HOST FROM information_schema.PROCESSLIST WHERE ID = IS_USED_LOCK(%s)"


def lock_name(purpose: str, database: str) -> str:
    name = f"spiffctl:{purpose}:{database}"
    if len(name) <= 64:
        return name
    return f"spiffctl:{purpose}:{hashlib.sha256(database.encode()).hexdigest()[:32]}"


class NamedLock:
    def __init__(self, endpoint: Endpoint, purpose: str, timeout: float, *, name: str | None = None) -> None:
        self.name = name or lock_name(purpose, endpoint.parts.path)
        self.conn: Any = mysql.connect(endpoint, timeout)
        # Autocommit: a poll on this connection must not read an old snapshot (REPEATABLE READ).
        self.conn.autocommit(True)

    def try_acquire(self) -> bool:
        return self.one("SELECT GET_LOCK(%s, 0)", (self.name,)) == 1

    def holder(self) -> str | None:
        with self.conn.cursor() as cur:
            cur.execute(HOLDER_QUERY, (self.name,))
            row = cur.fetchone()
        if row is None:
            return None
        connection, address = row
        return f"connection {connection} from {address}"

    def alive(self) -> bool:
        try:
            return self.one("SELECT 1", ()) == 1
        except Exception:
            return False

    def close(self) -> None:
        # Release before closing: the server drops a closed session's locks only once its
        # connection thread has noticed the close, and a waiter polling in between would miss
        # its turn. The close still releases them if the query cannot run.
        try:
            self.one("SELECT RELEASE_LOCK(%s)", (self.name,))
        except Exception:
            pass
        try:
            self.conn.close()
        except Exception:
            pass

    def one(self, query: str, args: tuple[object, ...]) -> object:
        with self.conn.cursor() as cur:
            cur.execute(query, args)
            row = cur.fetchone()
        return row[0] if row else None
