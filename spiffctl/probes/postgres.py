"""PostgreSQL: connect with psycopg 3 using the URI the backend will use, then ``SELECT 1``."""

from __future__ import annotations

import math
import re
from typing import Any

from spiffctl.probes import TLS_FAILURE, Outcome, classify_exception, classify_text, sql
from spiffctl.settings import Endpoint

# libpq reports connection failures as text (sqlstate is unset before the session exists).
PERMANENT = (
    "password authentication failed",
    "authentication failed",
    "does not exist",  # database or role
    "no pg_hba.conf entry",
    "permission denied",
    "invalid uri",
    "invalid connection option",
    "invalid sslmode",
    "server does not support ssl",
    "authentication method",
    "password is required",
    "fe_sendauth",
    *TLS_FAILURE,
)
TRANSIENT = (
    "connection refused",
    "timeout",
    "timed out",
    "starting up",
    "shutting down",
    "in recovery mode",
    "too many clients",
    "remaining connection slots",
    "could not translate host name",
    "failed to resolve host",
    "server closed the connection",
    "no route to host",
    "network is unreachable",
    "no such file or directory",  # unix socket not created yet
)


def conninfo(endpoint: Endpoint) -> str:
    """The SQLAlchemy URI as libpq wants it: drop ``+driver`` from the scheme."""
    rest = endpoint.url.split("://", 1)[1]
    return f"postgresql://{rest}"


def connect(endpoint: Endpoint, timeout: float) -> Any:
    import psycopg  # lazy: ~100 ms of imports, paid only when PostgreSQL is configured

    # libpq's connect_timeout is whole seconds and treats anything below 2 as 2.
    return psycopg.connect(conninfo(endpoint), connect_timeout=max(2, math.ceil(timeout)), autocommit=True)


# libpq wraps the reason: 'connection failed: connection to server at "h", port 5432 failed: <reason>'
# and appends a multi-line hint. Keep the reason; the caller already says where.
_PREFIX = re.compile(r"^(connection failed: )?(connection to server (at|on socket) .*? failed: )?", re.DOTALL)
_HINT = re.compile(r"\s*Is the server running.*$", re.DOTALL)


def classify(e: BaseException) -> Outcome:
    if isinstance(e, OSError):
        return classify_exception(e)
    reason = _HINT.sub("", _PREFIX.sub("", str(e).strip()))
    return classify_text(reason or str(e), PERMANENT, TRANSIENT)


def check(endpoint: Endpoint, timeout: float) -> Outcome:
    return sql.select_one(connect, classify, endpoint, timeout)


def revision(endpoint: Endpoint, timeout: float) -> Outcome:
    return sql.schema_revision(connect, classify, endpoint, timeout)
