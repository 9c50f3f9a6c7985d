"""MySQL / MariaDB: everything spiffctl needs of it (:class:`spiffctl.databases.Kind`).

The probe. Connect with PyMySQL (pure Python, installs on musl) and ``SELECT 1``. The backend
itself uses mysqlclient; the URI is the same, so we parse it ourselves.

The session lock: ``GET_LOCK(name, 0)`` on spiffctl's own connection. Lock names are limited to
64 characters; a long database name is hashed into the name. ``IS_USED_LOCK`` gives the holder's
connection id and ``information_schema.PROCESSLIST`` its client address (a connection of the same
user is always visible; others need the PROCESS privilege). Neither tells when the lock was taken.

The lease: ``GET_LOCK`` on the holder's session, ``UUID_SHORT()`` epochs.

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

import hashlib
import math
import time
from typing import TYPE_CHECKING, Any

from spiffctl.config.settings import Endpoint
from spiffctl.databases import dbapi, sessions
from spiffctl.databases.server import ServerLock
from spiffctl.databases.sessions import Acquisition
from spiffctl.lease.stores import Holder
from spiffctl.probes import TLS_FAILURE, Outcome, classify_exception, classify_text, permanent, transient

# MySQL client/server error numbers.
PERMANENT_CODES = {
    1044: "access denied to the database",
    1045: "access denied (wrong user or password)",
    1049: "unknown database",
    1129: "host blocked after too many errors (run FLUSH HOSTS)",
    1142: "permission denied",
    1251: "the server wants an authentication method the client does not support",
    1698: "access denied (wrong user or password)",
    2026: "TLS connection error",
    2059: "authentication plugin cannot be loaded",
}
TRANSIENT_CODES = {
    1040: "too many connections",
    1053: "server shutting down",
    2002: "cannot connect (socket)",
    2003: "cannot connect",
    2006: "server has gone away",
    2013: "lost connection",
}


def connect_args(endpoint: Endpoint, timeout: float) -> dict[str, Any]:
    parts = endpoint.parts
    query = parts.params
    args: dict[str, Any] = {
        "host": parts.host or "localhost",
        "port": parts.port or 3306,
        "user": parts.username or "root",
        "password": parts.password or "",
        "database": parts.path or None,
        "connect_timeout": timeout,
        "read_timeout": timeout,
        "write_timeout": timeout,
        "charset": query.get("charset", "utf8mb4"),
    }
    if "unix_socket" in query:
        args["unix_socket"] = query["unix_socket"]
    tls = {k.removeprefix("ssl_"): v for k, v in query.items() if k in ("ssl_ca", "ssl_cert", "ssl_key")}
    if tls:
        args["ssl"] = tls
    return args


def connect(endpoint: Endpoint, timeout: float) -> Any:
    import pymysql

    return pymysql.connect(**connect_args(endpoint, timeout))


def _labelled(label: str, message: str) -> str:
    """``label: message``, unless the server's message already says it ("Unknown database 'x'")."""
    return message if message.lower().startswith(label.lower()) else f"{label}: {message}"


def classify(e: BaseException) -> Outcome:
    args: tuple[object, ...] = tuple(getattr(e, "args", ()))
    if len(args) >= 2 and isinstance(args[0], int):
        code, message = args[0], str(args[1])
        if any(m in message.lower() for m in TLS_FAILURE):
            return permanent(f"TLS verification failed: {message}")
        if code in PERMANENT_CODES:
            return permanent(_labelled(PERMANENT_CODES[code], message))
        if code in TRANSIENT_CODES:
            return transient(_labelled(TRANSIENT_CODES[code], message))
        return classify_text(message)
    if isinstance(e, OSError):
        return classify_exception(e)
    return classify_text(str(e))


def check(endpoint: Endpoint, timeout: float) -> Outcome:
    return dbapi.select_one(connect, classify, endpoint, timeout)


def missing_table(e: BaseException) -> bool:
    args = tuple(getattr(e, "args", ()))
    return bool(args) and args[0] == 1146  # ER_NO_SUCH_TABLE


def revision(endpoint: Endpoint, timeout: float) -> Outcome:
    return dbapi.schema_revision(connect, classify, missing_table, endpoint, timeout)


LOCK_HOLDER_QUERY = "SELECT ID, HOST FROM information_schema.PROCESSLIST WHERE ID = IS_USED_LOCK(%s)"


def lock_name(purpose: str, database: str) -> str:
    name = f"spiffctl:{purpose}:{database}"
    if len(name) <= 64:
        return name
    return f"spiffctl:{purpose}:{hashlib.sha256(database.encode()).hexdigest()[:32]}"


class NamedLock(ServerLock):
    def __init__(self, endpoint: Endpoint, purpose: str, timeout: float, *, name: str | None = None) -> None:
        self.name = name or lock_name(purpose, endpoint.parts.path)
        self.conn: Any = connect(endpoint, timeout)
        # Autocommit: a poll on this connection must not read an old snapshot (REPEATABLE READ).
        self.conn.autocommit(True)

    def try_acquire(self) -> bool:
        return self.one("SELECT GET_LOCK(%s, 0)", (self.name,)) == 1

    def holder(self) -> str | None:
        row = self.row(LOCK_HOLDER_QUERY, (self.name,))
        if row is None:
            return None
        connection, address = row
        return f"connection {connection} from {address}"

    def unlock(self) -> None:
        self.one("SELECT RELEASE_LOCK(%s)", (self.name,))


LEASE_HOLDER_QUERY = "SELECT ID, HOST, COMMAND, TIME FROM information_schema.PROCESSLIST WHERE ID = IS_USED_LOCK(%s)"


class MySQLSession:
    def __init__(self, endpoint: Endpoint, name: str, ttl: float, *, timeout: float, linger: float) -> None:
        self.lock = NamedLock(endpoint, sessions.LEASE_PURPOSE, timeout, name=name)
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
        row = self.lock.row(LEASE_HOLDER_QUERY, (self.name,))
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


# What the registry asks of a kind (spiffctl.databases.Kind) beyond the probe above.

KEEP_READER = True


def driver_errors() -> tuple[type[BaseException], ...]:
    import pymysql

    return (pymysql.err.Error, OSError)


def open_lock(endpoint: Endpoint, purpose: str, timeout: float) -> NamedLock:
    return NamedLock(endpoint, purpose, timeout)


def open_session(
    endpoint: Endpoint, name: str, ttl: float, *, timeout: float, host: str, pid: int, linger: float
) -> MySQLSession:
    return MySQLSession(endpoint, name, ttl, timeout=timeout, linger=linger)


def connect_reader(endpoint: Endpoint, timeout: float) -> Any:
    conn = connect(endpoint, timeout)
    conn.autocommit(True)  # else REPEATABLE READ shows the first read forever
    return conn


def read_revision(cur: Any) -> str:
    return dbapi.read_revision(cur, missing_table)


if TYPE_CHECKING:  # mypy checks this module against the Protocol
    import spiffctl.databases.mysql as _this
    from spiffctl.databases import Kind

    _kind: Kind = _this
