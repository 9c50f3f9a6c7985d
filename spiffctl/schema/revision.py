"""The database schema against this image's migration head: read cheaply, wait for it.

The backend's scripts compare the schema with the head by starting the whole app twice
(``flask db current``, ``flask db heads``: seconds of CPU each) every 2 s. spiffctl reads
``alembic_version`` on one kept connection (a millisecond) and the head from the migration files
(:mod:`spiffctl.schema.graph`), so the scripts' own loop passes at its first iteration.

A revision this image's graph does not contain is neither behind nor at head: a newer version
migrated the database (a rolling upgrade), and waiting would never end. That is said at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from spiffctl import databases
from spiffctl.config import variables
from spiffctl.config.settings import Endpoint
from spiffctl.databases.dbapi import RevisionError
from spiffctl.probes import Status
from spiffctl.schema.graph import Graph
from spiffctl.util import bounded, poll
from spiffctl.util.errors import CONFIG, SpiffctlError, UnavailableError
from spiffctl.wait import Say, describe, waiting_event

READ_TIMEOUT = 5.0
TIMEOUT_VAR = variables.MIGRATION_TIMEOUT


def timeout(env: Mapping[str, str]) -> float:
    """``SPIFFCTL_MIGRATION_TIMEOUT``: bounds the wait for the migration lock and for the schema."""
    return variables.number(TIMEOUT_VAR, env.get(TIMEOUT_VAR))


@dataclass(frozen=True)
class SchemaState:
    revision: str  # "" for an empty schema
    head: str
    behind: int  # migrations `flask db upgrade` would apply
    known: bool  # the revision is in this image's migration graph

    @property
    def at_head(self) -> bool:
        return self.revision == self.head

    def describe(self) -> str:
        if self.at_head:
            return f"at head ({self.head})"
        at = f"at {self.revision}" if self.revision else "empty"
        left = f"{self.behind} migration{'s' if self.behind != 1 else ''} left"
        return f"{at}, head {self.head}, {left}"


def state_of(graph: Graph, revision: str) -> SchemaState:
    known = not revision or revision in graph
    return SchemaState(revision, graph.head, graph.behind(revision) if known else 0, known)


def unknown_revision(state: SchemaState) -> SpiffctlError:
    return SpiffctlError(
        f"the database is at revision {state.revision}, which this image's migrations (head {state.head}) do not "
        "contain: a newer version of the backend migrated it; run that version's image (waiting would never end)",
        CONFIG,
    )


def unreadable(endpoint: Endpoint, detail: str) -> UnavailableError:
    """A revision that waiting cannot make readable (permission denied, for one)."""
    return UnavailableError(
        f"cannot read the schema revision of the {describe(endpoint)}: {detail}; "
        f"the database user needs SELECT on alembic_version (check {endpoint.variable})"
    )


class Unreadable(Exception):
    """The revision could not be read; ``permanent`` when retrying cannot help (permission denied)."""

    def __init__(self, detail: str, permanent: bool) -> None:
        super().__init__(detail)
        self.detail = detail
        self.permanent = permanent


class RevisionReader:
    """Reads ``alembic_version`` again and again on one connection, reconnecting after a failure."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.kind = databases.of(endpoint)
        self.conn: Any = None

    def read(self) -> str:
        """The revision, ``""`` for an empty schema; :class:`Unreadable` otherwise. Bounded."""
        [result], _ = bounded.race([self._read], time.monotonic() + READ_TIMEOUT, name="revision")
        if result is None:
            self.conn = None  # stuck in its driver: abandon it
            raise Unreadable(f"no answer within {READ_TIMEOUT:g} s", permanent=False)
        if isinstance(result, Unreadable):
            raise result
        return result

    def _read(self) -> str | Unreadable:
        try:
            if self.conn is None:
                self.conn = self.kind.connect_reader(self.endpoint, READ_TIMEOUT)
                if self.conn is None:
                    return ""  # no database yet: nothing was ever migrated
            cur = self.conn.cursor()
            try:
                return self.kind.read_revision(cur)
            finally:
                cur.close()
                if not self.kind.KEEP_READER:
                    self.close()
        except RevisionError as e:
            return Unreadable(str(e), permanent=True)
        except Exception as e:
            self.close()
            outcome = self.kind.classify(e)
            return Unreadable(outcome.detail, permanent=outcome.status is Status.PERMANENT)

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
            self.conn = None


def migration_holder(endpoint: Endpoint) -> str:
    """Words for the progress line: who holds the migration lock, or that nobody does."""
    try:
        lock = databases.of(endpoint).open_lock(endpoint, "migrate", READ_TIMEOUT)
    except Exception:
        return "the migration lock cannot be inspected"
    try:
        holder = lock.holder()
    except Exception:
        return "the migration lock cannot be inspected"
    finally:
        lock.close()
    if holder:
        return f"migration lock held by {holder}"
    return "no replica holds the migration lock (an api replica with SPIFFWORKFLOW_BACKEND_UPGRADE_DB=true applies it)"


def wait_for_head(
    endpoint: Endpoint,
    graph: Graph,
    timeout: float,
    *,
    say: Say,
    waiting: Callable[[str], None] = lambda _: None,
) -> SchemaState:
    """Return once the schema is at head; raise when it cannot get there or ``timeout`` passes.

    ``waiting`` is told what we wait for (for ``spiffctl status``) at every progress line.
    """
    reader = RevisionReader(endpoint)

    def attempt() -> SchemaState | poll.Pending[str]:
        try:
            state = state_of(graph, reader.read())
        except Unreadable as e:
            if e.permanent:
                raise unreadable(endpoint, e.detail) from None
            return poll.Pending(f"cannot read the revision ({e.detail})")
        if not state.known:
            raise unknown_revision(state)
        return state if state.at_head else poll.Pending(state.describe())

    def progress(what: str, waited: float) -> None:
        line = f"waiting for the schema: {what}; {migration_holder(endpoint)} ({waited:.0f} s)"
        say(waiting_event(line, "schema", waited, what))
        waiting(f"the schema: {what}")

    def timed_out(what: str, waited: float) -> UnavailableError:
        return UnavailableError(
            f"the schema is not at head after {timeout:g} s: {what}; {migration_holder(endpoint)}; "
            f"raise {TIMEOUT_VAR} if a long migration is still running"
        )

    try:
        # At once: a replica waiting for another's upgrade says so before the first cadence.
        return poll.until(attempt, poll.Poll(timeout, report_at_once=True), progress=progress, timed_out=timed_out)
    finally:
        reader.close()
