"""MySQL / MariaDB: connect with PyMySQL (pure Python, installs on musl) and ``SELECT 1``.

The backend itself uses mysqlclient; the URI is the same, so we parse it ourselves.
"""

from __future__ import annotations

from typing import Any

from spiffctl.config.settings import Endpoint
from spiffctl.probes import TLS_FAILURE, Outcome, classify_exception, classify_text, permanent, sql, transient

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
    return sql.select_one(connect, classify, endpoint, timeout)


def missing_table(e: BaseException) -> bool:
    args = tuple(getattr(e, "args", ()))
    return bool(args) and args[0] == 1146  # ER_NO_SUCH_TABLE


def revision(endpoint: Endpoint, timeout: float) -> Outcome:
    return sql.schema_revision(connect, classify, missing_table, endpoint, timeout)
