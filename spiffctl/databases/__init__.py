"""The database kinds spiffctl runs against, one module each, behind one registry keyed by kind.

A kind (``Endpoint.kind``) is everything spiffctl needs of one database: connect and probe it,
classify its driver's errors, take a session lock (the migration lock), hold the Background lease
on a session, and read ``alembic_version`` again and again. Each module ``spiffctl.databases.<kind>``
gives all of that (:class:`Kind`, which mypy checks each module against); callers ask :func:`kind`
or :func:`of` for it instead of testing the kind.

Modules are imported on first use and kept, and each imports its driver only when it connects,
so a process pays for the kinds (and drivers) it uses and no other. Adding a kind is one module
(or sub-package) plus one line in :data:`NAMES` (and, for the operator to name it, its URI scheme
in :mod:`spiffctl.config.database_uri`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from spiffctl.config.settings import Endpoint
    from spiffctl.databases.sessions import LeaseSession, SessionLock
    from spiffctl.probes import Outcome

# The registry: kind -> its name in messages. The kind's module is spiffctl.databases.<kind>.
NAMES = {
    "postgres": "PostgreSQL",
    "mysql": "MySQL",
    "sqlite": "SQLite",
}


class Kind(Protocol):
    """What spiffctl needs of a database kind; a kind's module provides these names."""

    # The revision reader keeps its connection between reads (else one connection per read).
    KEEP_READER: bool

    def connect(self, endpoint: Endpoint, timeout: float) -> Any:
        """A DB-API connection to ``endpoint`` as the backend would open it; raises the driver's error."""

    def check(self, endpoint: Endpoint, timeout: float) -> Outcome:
        """The probe: it answers and lets us in (``spiffctl.probes.check`` catches what escapes)."""

    def revision(self, endpoint: Endpoint, timeout: float) -> Outcome:
        """The probe with the schema's revision in ``facts`` (see :func:`.dbapi.schema_revision`)."""

    def classify(self, e: BaseException) -> Outcome:
        """What a failure of the driver (or of the socket under it) means: transient or permanent."""

    def driver_errors(self) -> tuple[type[BaseException], ...]:
        """The exceptions the driver raises for the database's failures (imports the driver)."""

    def open_lock(self, endpoint: Endpoint, purpose: str, timeout: float) -> SessionLock:
        """A session lock named after ``purpose`` and the database; connects now."""

    def open_session(
        self, endpoint: Endpoint, name: str, ttl: float, *, timeout: float, host: str, pid: int, linger: float
    ) -> LeaseSession:
        """The Background lease's session on the lock ``name``; connects now."""

    def connect_reader(self, endpoint: Endpoint, timeout: float) -> Any:
        """A connection whose every read sees the latest commit; ``None`` when there is no database
        yet to read (the backend creates it at its first start)."""

    def read_revision(self, cur: Any) -> str:
        """``alembic_version``'s revision through ``cur``, ``""`` for an empty schema; raises the
        driver's error or :class:`.dbapi.RevisionError`."""


_loaded: dict[str, Kind] = {}


def known(name: str) -> bool:
    return name in NAMES


def kind(name: str) -> Kind:
    """The module of kind ``name``, imported on first use; :class:`KeyError` for an unknown kind."""
    found = _loaded.get(name)
    if found is None:
        if name not in NAMES:
            raise KeyError(f"no database kind {name!r}")
        found = _loaded[name] = cast(Kind, importlib.import_module(f"{__name__}.{name}"))
    return found


def of(endpoint: Endpoint) -> Kind:
    """The kind of ``endpoint``'s database."""
    return kind(endpoint.kind)


def listing() -> str:
    """Every kind's name for a message: ``A, B or C``."""
    names = list(NAMES.values())
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else "".join(names)
