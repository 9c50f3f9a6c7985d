"""MySQL / MariaDB: connect with PyMySQL (pure Python, installs on musl) and ``SELECT 1``.

The backend itself uses mysqlclient; the URI is the same, so we parse it ourselves.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from spiffctl.probes import TLS_FAILURE, Outcome, classify_exception, classify_text, permanent, sql, transient
from spiffctl.settings import Endpoint

# MySQL client/server error numbers.
PERMANENT_CODES = {
    1044: "access denied to the database",
    1045: "access denied (wrong user or password)",
    1049: "unknown database",
    1129: "host blocked after too many errors (run FLUSH HOSTS)",
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
    2013: "lost connection during handshake",
}


def connect_args(endpoint: Endpoint, timeout: float) -> dict[str, Any]:
    parts = urlsplit(endpoint.url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    args: dict[str, Any] = {
        "host": parts.hostname or "localhost",
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "database": unquote(parts.path.lstrip("/")) or None,
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


def classify(e: BaseException) -> Outcome:
    args = getattr(e, "args", ())
    if len(args) >= 2 and isinstance(args[0], int):
        code, message = args[0], str(args[1])
        if any(m in message.lower() for m in TLS_FAILURE):
            return permanent(f"TLS verification failed: {message}")
        if code in PERMANENT_CODES:
            return permanent(f"{PERMANENT_CODES[code]}: {message}")
        if code in TRANSIENT_CODES:
            return transient(f"{TRANSIENT_CODES[code]}: {message}")
        return classify_text(message, (), ())
    if isinstance(e, OSError):
        return classify_exception(e)
    return classify_text(str(e), TLS_FAILURE, ())


def check(endpoint: Endpoint, timeout: float) -> Outcome:
    return sql.select_one(connect, classify, endpoint, timeout)


def revision(endpoint: Endpoint, timeout: float) -> Outcome:
    return sql.schema_revision(connect, classify, endpoint, timeout)
