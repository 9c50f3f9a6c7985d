"""PostgreSQL: connect with psycopg 3 using the URI the backend will use, then ``SELECT 1``."""

from __future__ import annotations

import math
import re
from typing import Any

from spiffctl.config.settings import Endpoint
from spiffctl.probes import Outcome, classify_exception, classify_text, sql

# libpq reports connection failures as text (sqlstate is unset before the session exists). Wrong
# passwords and missing databases or roles are among probes.REFUSED; these are libpq's own refusals.
PERMANENT = (
    "no pg_hba.conf entry",
    "permission denied",
    "invalid uri",
    "invalid connection option",
    "invalid sslmode",
    "server does not support ssl",
    "authentication method",
    "password is required",
    "fe_sendauth",
)


def connect_args(endpoint: Endpoint) -> dict[str, str]:
    """What the backend's driver receives from SQLAlchemy: the URI's parts plus its query.

    Not the URI itself: libpq's URI syntax differs from SQLAlchemy's (an unencoded "#" in the
    password is fine for SQLAlchemy, a fragment for libpq).
    """
    url = endpoint.parts
    args = {
        key: value
        for key, value in (
            ("host", url.host),
            ("port", str(url.port) if url.port else None),
            ("user", url.username),
            ("password", url.password),
            ("dbname", url.path or None),
        )
        if value is not None
    }
    args.update(url.params)  # sslmode, options, host=/socket/dir ... as SQLAlchemy passes them on
    return args


def connect(endpoint: Endpoint, timeout: float, application_name: str | None = None) -> Any:
    import psycopg  # lazy: ~100 ms of imports, paid only when PostgreSQL is configured

    # libpq's connect_timeout is whole seconds and treats anything below 2 as 2; the callers
    # bound the wait themselves.
    from psycopg.conninfo import make_conninfo

    args = connect_args(endpoint)
    if application_name:
        args["application_name"] = application_name  # how others name us in pg_stat_activity
    conninfo = make_conninfo("", connect_timeout=max(2, math.ceil(timeout)), **args)
    return psycopg.connect(conninfo, autocommit=True)


# libpq wraps the reason: 'connection failed: connection to server at "h", port 5432 failed: <reason>'
# and appends a multi-line hint. Keep the reason; the caller already says where.
_PREFIX = re.compile(r"^(connection failed: )?(connection to server (at|on socket) .*? failed: )?", re.DOTALL)
_HINT = re.compile(r"\s*Is the server running.*$", re.DOTALL)


def classify(e: BaseException) -> Outcome:
    if isinstance(e, OSError):
        return classify_exception(e)
    reason = _HINT.sub("", _PREFIX.sub("", str(e).strip()))
    return classify_text(reason or str(e), PERMANENT)


def check(endpoint: Endpoint, timeout: float) -> Outcome:
    return sql.select_one(connect, classify, endpoint, timeout)


def missing_table(e: BaseException) -> bool:
    return getattr(e, "sqlstate", None) == "42P01"  # undefined_table


# A user without USAGE on the schema gets "does not exist" for a table that is there, exactly like
# an empty database (and so does `flask db current`, which then prints nothing and exits 0).
_HIDDEN = """
SELECT n.nspname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname = 'alembic_version' AND c.relkind IN ('r', 'p') AND NOT has_schema_privilege(n.oid, 'USAGE')
"""


def hidden_table(cur: Any) -> str:
    cur.execute(_HIDDEN)
    schemas = [str(row[0]) for row in cur.fetchall()]
    if not schemas:
        return ""
    return f"alembic_version exists in schema {', '.join(schemas)}, on which the database user has no USAGE privilege"


def revision(endpoint: Endpoint, timeout: float) -> Outcome:
    return sql.schema_revision(connect, classify, missing_table, endpoint, timeout, hidden_table)
