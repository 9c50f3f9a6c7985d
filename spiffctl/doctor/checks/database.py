"""The database: reachable, credentials accepted, database exists; then its schema against the head.

One connection does both: reading ``alembic_version`` fails the same way ``SELECT 1`` would
(refused, bad password, unknown database), so the probe's ``revision`` answers reachability too.
"""

from __future__ import annotations

from spiffctl import databases, probes
from spiffctl.config.settings import Endpoint, P
from spiffctl.doctor.engine import Context, Result, fail, ok, skip, warn
from spiffctl.probes import Outcome, Status
from spiffctl.roles import Need
from spiffctl.schema.graph import MigrationsError, read_graph
from spiffctl.wait import describe

NAME = "database"
SCHEMA = "database schema"
UPGRADE_DB = P + "UPGRADE_DB"


def check(ctx: Context) -> list[Result]:
    db = ctx.settings.endpoint(Need.DATABASE)
    if db is None:
        return [skip(NAME, "not checked: the database settings have errors (see configuration)")]
    where = describe(db)
    outcome = revision(db, ctx.budget())
    if not outcome.ok:
        return [_unreachable(db, where, outcome), skip(SCHEMA, "database not reachable")]
    if "revision_error" in outcome.facts:
        # It answered, but alembic_version cannot be read: never call that "empty".
        return [
            ok(NAME, f"{where} answered"),
            fail(
                SCHEMA,
                f"unreadable: alembic_version cannot be read ({outcome.facts['revision_error']})",
                f"grant SELECT on alembic_version to the database user of {db.variable}; "
                "background and worker cannot tell when the schema is at head without it",
            ),
        ]
    return [ok(NAME, f"{where} answered"), schema(ctx, outcome.facts.get("revision", ""), db)]


def revision(endpoint: Endpoint, timeout: float) -> Outcome:
    """The kind's ``revision`` with the same never-raise contract as :func:`probes.check`."""
    try:
        return databases.of(endpoint).revision(endpoint, max(timeout, 0.1))
    except Exception as e:
        return probes.classify_exception(e)


def _migration_holder(db: Endpoint, ctx: Context) -> str | None:
    """Who holds spiffctl's migration lock on this database; ``None`` when nobody (or unknowable)."""
    from spiffctl.schema.upgrade import LOCK

    try:
        lock = databases.of(db).open_lock(db, LOCK, ctx.budget())
    except Exception:
        return None
    try:
        return lock.holder()
    except Exception:
        return None
    finally:
        lock.close()


def _unreachable(db: Endpoint, where: str, outcome: Outcome) -> Result:
    hint = unreachable_hint(outcome.detail, outcome.status is Status.PERMANENT, "the server", db.variable)
    return fail(NAME, f"{where}: {outcome.detail}", hint)


def unreachable_hint(detail: str, permanent: bool, server: str, variable: str) -> str:
    """The fix for a database that did not let us in, matched to how it failed: a server that
    answers "no such database" runs, so "check that it runs" would send the operator astray."""
    low = detail.lower()
    if "unknown database" in low or ("database" in low and "does not exist" in low):
        return "create the database (the backend's migrations create tables, not the database itself)"
    if permanent:
        return f"fix the user, password, database name or TLS settings in {variable}"
    return f"check that {server} runs and that {variable} points at it"


def schema(ctx: Context, current: str, db: Endpoint) -> Result:
    """``at head``, ``migration in progress``, ``behind (N migrations)``, ``empty`` or ``unknown``."""
    try:
        graph = read_graph(ctx.settings.backend_dir)
        head = graph.head
    except MigrationsError as e:
        at = f"database at {current}" if current else "database empty"
        return warn(SCHEMA, f"unknown: {e} ({at})", "point --backend-dir (SPIFFCTL_BACKEND_DIR) at the backend root")
    if current == head:
        return ok(SCHEMA, f"at head ({head})")
    if current and current not in graph:
        # Background and worker wait until the revision equals the head: they would wait forever.
        return fail(
            SCHEMA,
            f"unknown: the database is at {current}, which this backend's migrations do not contain (head {head})",
            "a different backend version migrated it; run the image version that matches the database",
        )
    n = graph.behind(current)
    state = f"behind ({n} migration{'s' if n != 1 else ''})" if current else f"empty ({n} migrations to apply)"
    detail = f"{state}: at {current}, head {head}" if current else f"{state}: no alembic_version, head {head}"
    holder = _migration_holder(db, ctx)
    if holder:
        return warn(
            SCHEMA,
            f"migration in progress (lock held by {holder}): at {current or 'empty'}, head {head}, {n} to apply",
            "wait for it: background and worker start when the schema reaches head",
        )
    if ctx.settings.flag(UPGRADE_DB):
        return warn(SCHEMA, detail, f"the api role upgrades it at start ({UPGRADE_DB}=true); start the api first")
    return fail(
        SCHEMA,
        detail,
        f"set {UPGRADE_DB}=true for the api role or run `flask db upgrade` in the backend root; "
        "background and worker wait until the schema is at head",
    )
