"""What the kinds that are database servers share: a lock held on spiffctl's own connection
(one-value queries, a liveness check, an explicit release before the close), and a lock key.

Why release before closing: the server drops a closed session's locks only once its side of the
session has noticed the close (its connection thread, or its backend process exiting), and a
waiter polling in between would miss its turn. The close still releases them when the release
query cannot run.
"""

from __future__ import annotations

import hashlib
from typing import Any


def key64(name: str) -> int:
    """A signed 64-bit key for ``name``, for servers whose advisory locks take a bigint."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class ServerLock:
    conn: Any  # a DB-API connection in autocommit mode

    def unlock(self) -> None:
        """Release the lock on this session (a no-op for the server when it is not held)."""
        raise NotImplementedError

    def row(self, query: str, args: tuple[object, ...]) -> tuple[Any, ...] | None:
        with self.conn.cursor() as cur:
            cur.execute(query, args)
            found = cur.fetchone()
        return tuple(found) if found is not None else None

    def one(self, query: str, args: tuple[object, ...]) -> object:
        found = self.row(query, args)
        return found[0] if found else None

    def alive(self) -> bool:
        try:
            return self.one("SELECT 1", ()) == 1
        except Exception:
            return False

    def close(self) -> None:
        try:
            self.unlock()
        except Exception:
            pass
        try:
            self.conn.close()
        except Exception:
            pass
