"""What every kind's probe shares, whatever its DB-API driver: connect, run a query, close,
classify the failure; read ``alembic_version``.

Each kind supplies ``connect(endpoint, timeout)`` returning a DB-API connection,
``classify(exc)`` mapping its driver's errors to an :class:`~spiffctl.probes.Outcome`, and
``missing_table(exc)``: the error says ``alembic_version`` does not exist (an empty schema), as
opposed to any other refusal (permission denied, locked), which must never read as "empty".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spiffctl.config.settings import Endpoint
from spiffctl.probes import Outcome, ok

Connect = Callable[[Endpoint, float], Any]
Classify = Callable[[BaseException], Outcome]
MissingTable = Callable[[BaseException], bool]
# After "no such table": why the table may exist but be out of sight ("" when it truly is not there).
Hidden = Callable[[Any], str]


class RevisionError(Exception):
    """``alembic_version`` exists but cannot be read as one revision; the message says why."""


# Alembic keeps the applied revision here; the backend's migrations are Alembic (Flask-Migrate).
REVISION_QUERY = "SELECT version_num FROM alembic_version"


def select_one(
    connect: Connect, classify: Classify, endpoint: Endpoint, timeout: float, query: str = "SELECT 1"
) -> Outcome:
    """Connected, authenticated, database exists, and it answers a query."""

    def run(cur: Any) -> Outcome:
        cur.execute(query)
        cur.fetchall()
        return ok(f"{query} answered")

    return _with_cursor(connect, classify, endpoint, timeout, run)


def read_revision(cur: Any, missing_table: MissingTable, hidden: Hidden | None = None) -> str:
    """The revision in ``alembic_version``; ``""`` when the table does not exist (nothing was ever
    migrated). Any other failure propagates: the driver's error, or :class:`RevisionError`."""
    try:
        cur.execute(REVISION_QUERY)
    except Exception as e:
        if missing_table(e):
            reason = hidden(cur) if hidden else ""
            if reason:
                raise RevisionError(reason) from None
            return ""
        raise
    rows = cur.fetchall()
    if len(rows) > 1:
        raise RevisionError(f"alembic_version holds {len(rows)} rows; expected one")
    return str(rows[0][0]) if rows else ""


def schema_revision(
    connect: Connect,
    classify: Classify,
    missing_table: MissingTable,
    endpoint: Endpoint,
    timeout: float,
    hidden: Hidden | None = None,
) -> Outcome:
    """Connect, then read the revision: ``facts["revision"]`` ("" for an empty schema), or, when
    the database answered but ``alembic_version`` could not be read, ``facts["revision_error"]``."""

    def run(cur: Any) -> Outcome:
        try:
            return ok("read alembic_version", revision=read_revision(cur, missing_table, hidden))
        except RevisionError as e:
            return ok("connected", revision_error=str(e))
        except Exception as e:
            return ok("connected", revision_error=classify(e).detail)

    return _with_cursor(connect, classify, endpoint, timeout, run)


def _with_cursor(
    connect: Connect, classify: Classify, endpoint: Endpoint, timeout: float, run: Callable[[Any], Outcome]
) -> Outcome:
    try:
        conn = connect(endpoint, timeout)
    except Exception as e:
        return classify(e)
    try:
        return run(conn.cursor())
    except Exception as e:
        return classify(e)
    finally:
        try:
            conn.close()
        except Exception:  # closing a half-broken connection must not hide the real outcome
            pass
