"""What the SQL probes share: connect, run a query, close, classify the failure.

Each SQL module supplies ``connect(endpoint, timeout)`` returning a DB-API connection and
``classify(exc)`` mapping its driver's errors to an :class:`~spiffctl.probes.Outcome`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spiffctl.probes import Outcome, ok, permanent
from spiffctl.settings import Endpoint

Connect = Callable[[Endpoint, float], Any]
Classify = Callable[[BaseException], Outcome]

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


def schema_revision(connect: Connect, classify: Classify, endpoint: Endpoint, timeout: float) -> Outcome:
    """The Alembic revision applied to the database: facts["revision"] ("" when the schema is empty)."""

    def run(cur: Any) -> Outcome:
        try:
            cur.execute(REVISION_QUERY)
        except Exception:
            # No alembic_version table: nothing was ever migrated (an empty database).
            return ok("no alembic_version table", revision="")
        rows = cur.fetchall()
        if len(rows) > 1:
            return permanent(f"alembic_version holds {len(rows)} rows; expected one")
        return ok("read alembic_version", revision=str(rows[0][0]) if rows else "")

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
