"""PostgreSQL: everything spiffctl needs of it (:class:`spiffctl.databases.Kind`).

The probe. Connect with psycopg 3 using the URI the backend will use, then ``SELECT 1``.

The session lock: a session-level advisory lock on spiffctl's own connection. The key is a bigint
derived from the lock's purpose and the database name. ``pg_locks`` shows an advisory lock on a
bigint key as ``classid`` = its high 32 bits and ``objid`` = its low 32 bits (``objsubid`` 1),
which is how :meth:`AdvisoryLock.holder` finds the holding session, and ``pg_stat_activity``
tells its ``application_name`` (spiffctl sets it to name itself), client address and connection
time. A session of the same database user sees all of that; other users may see only part of it.

The lease: the advisory lock, a ``LISTEN``/``NOTIFY`` history.

Proof that the previous lease ended cleanly. Every session of the lease (standbys included)
``LISTEN``\\s on a channel of its own lock's key from the moment it connects. A holder notifies
``acquired <epoch>`` right after taking the lock, before its script may start, and
``released <epoch>`` after its script has exited and before it unlocks. PostgreSQL delivers
every notification committed while a session listens, in commit order, and a session that
finds the lock free has been delivered every notification committed before the unlock it
follows. So, when a session takes the lock, the last event in its history decides:

* ``released E``: the latest holder released after its script exited, and nobody took the lock
  since (they would have notified ``acquired``): proven;
* ``acquired E``: someone took the lock after the last clean release and its session ended
  without releasing (killed, terminated, dropped as idle): its script may still run until its own
  deadline, so not proven;
* nothing: this session has not watched long enough (first start, reconnected after a restart or
  failover, which a notification history does not survive): not proven.

Any session of any user of the database may ``NOTIFY`` on the channel, so a hand (or a stray
program) could send ``released E``. A release counts only when it comes from a backend this
session saw holding the lock (its ``acquired`` notification, or the holder query of a standby's
poll), by the notifying backend's pid; anything else is not proven.

Epochs are ``txid_current()`` at acquisition: they grow across restarts and on promoted replicas.
The holder names itself in ``application_name`` (``spiffctl bg epoch E pid P host``), which
``pg_stat_activity`` shows to standbys and to doctor. ``idle_session_timeout`` (PostgreSQL 14
and later) is set to the TTL on every lease session, so the server drops a frozen holder's
session, and with it the lock, a TTL after its last renewal; on older servers a frozen holder
keeps the lock until it resumes (its script is fenced anyway).

Needs no table and no privilege beyond connecting: advisory locks, ``LISTEN`` and
``pg_stat_activity`` of sessions of the same user are open to every user. Not through a
transaction-mode pooler (PgBouncer ``pool_mode=transaction``): a session lock needs a session.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from spiffctl.config.settings import Endpoint
from spiffctl.databases import dbapi, server, sessions
from spiffctl.databases.server import ServerLock
from spiffctl.databases.sessions import Acquisition
from spiffctl.lease.stores import Holder, released_cleanly
from spiffctl.probes import Outcome, classify_exception, classify_text

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
    return dbapi.select_one(connect, classify, endpoint, timeout)


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
    return dbapi.schema_revision(connect, classify, missing_table, endpoint, timeout, hidden_table)


_DATABASE = "(SELECT oid FROM pg_database WHERE datname = current_database())"

# The holding session, if any (granted: a waiter would appear too, with granted = false).
LOCK_HOLDER_QUERY = f"""
SELECT coalesce(nullif(a.application_name, ''), 'a session without a name'),
       coalesce(host(a.client_addr), 'the local socket'),
       to_char(a.backend_start AT TIME ZONE 'UTC', 'HH24:MI:SS')
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.classid::bigint = %s AND l.objid::bigint = %s AND l.database = {_DATABASE}
"""


class AdvisoryLock(ServerLock):
    def __init__(self, endpoint: Endpoint, purpose: str, timeout: float, *, name: str | None = None) -> None:
        self.key = server.key64(name or f"spiffctl:{purpose}:{endpoint.parts.path}")
        # pg_locks shows the key's halves as unsigned 32-bit oids.
        unsigned = self.key & 0xFFFF_FFFF_FFFF_FFFF
        self.halves = (unsigned >> 32, unsigned & 0xFFFF_FFFF)
        self.conn: Any = connect(endpoint, timeout, application_name=sessions.identity(purpose))

    def try_acquire(self) -> bool:
        return bool(self.one("SELECT pg_try_advisory_lock(%s)", (self.key,)))

    def holder(self) -> str | None:
        row = self.row(LOCK_HOLDER_QUERY, self.halves)
        if row is None:
            return None
        name, address, since = row
        return f"{name} from {address}, connected since {since} UTC"

    def unlock(self) -> None:
        self.one("SELECT pg_advisory_unlock(%s)", (self.key,))


HOLDS_QUERY = f"""
SELECT EXISTS (SELECT 1 FROM pg_locks
               WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND pid = pg_backend_pid()
                 AND classid::bigint = %s AND objid::bigint = %s AND database = {_DATABASE})
"""

# The holding session: its name, address, and seconds idle (0 while it runs a query).
LEASE_HOLDER_QUERY = f"""
SELECT a.pid, a.application_name, coalesce(host(a.client_addr), 'the local socket'),
       CASE WHEN a.state = 'idle' THEN extract(epoch FROM clock_timestamp() - a.state_change) ELSE 0 END
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.classid::bigint = %s AND l.objid::bigint = %s AND l.database = {_DATABASE}
"""

NAME = re.compile(r"^spiffctl bg epoch (\d+) pid (\d+) (.*)$")


class PostgresSession:
    def __init__(self, endpoint: Endpoint, name: str, ttl: float, *, timeout: float, host: str, pid: int) -> None:
        self.lock = AdvisoryLock(endpoint, sessions.LEASE_PURPOSE, timeout, name=name)
        self.conn = self.lock.conn
        self.key = self.lock.key
        self.ttl = ttl
        self.host = host
        self.pid = pid
        self.epoch = 0
        # Channel names are identifiers: hex digits keep this one safe to splice in.
        self.channel = f"spiffctl_{self.key & 0xFFFF_FFFF_FFFF_FFFF:016x}"
        self.events: list[tuple[str, int]] = []  # (payload, the notifying backend's pid)
        self.holders: set[int] = set()  # backends this session saw holding the lock
        self.conn.add_notify_handler(lambda n: self.events.append((n.payload, n.pid)))
        self.conn.execute(f"LISTEN {self.channel}")
        if int(str(self.lock.one("SELECT current_setting('server_version_num')", ()))) >= 140000:
            self.conn.execute("SELECT set_config('idle_session_timeout', %s, false)", (str(int(ttl * 1000)),))

    def acquire(self) -> Acquisition | None:
        if not self.lock.try_acquire():
            return None
        # A query after the lock's: notifications reach the client between commands.
        epoch = int(str(self.lock.one("SELECT txid_current()", ())))
        proven, why = judge(self.events, self.holders)
        self.events.clear()
        name = f"spiffctl bg epoch {epoch} pid {self.pid} {self.host}"[:63]
        self.conn.execute(
            "SELECT pg_notify(%s, %s), set_config('application_name', %s, false)",
            (self.channel, f"acquired {epoch}", name),
        )
        self.epoch = epoch
        return Acquisition(epoch, proven, why)

    def holds(self) -> bool:
        return bool(self.lock.one(HOLDS_QUERY, self.lock.halves))

    def holder(self) -> Holder | None:
        row = self.lock.row(LEASE_HOLDER_QUERY, self.lock.halves)
        if row is None:
            return None
        self.holders.add(int(row[0]))
        name, address, idle = str(row[1] or ""), str(row[2]), float(row[3] or 0)
        left = max(0.0, self.ttl - idle)
        found = NAME.match(name)
        if found is None:  # a session that took the lock but has not named itself yet
            return Holder(host=f"a session from {address}", pid=0, since=None, epoch=0, ttl_left=left)
        epoch, pid, host = found.groups()
        return Holder(host=host, pid=int(pid), since=None, epoch=int(epoch), ttl_left=left)

    def release(self) -> bool:
        if not self.holds():
            return False
        self.conn.execute("SELECT pg_notify(%s, %s)", (self.channel, f"released {self.epoch}"))
        self.lock.unlock()
        return True

    def close(self) -> None:
        self.lock.close()


def judge(events: list[tuple[str, int]], holders: set[int]) -> tuple[bool, str]:
    """How the previous lease ended, from the last event this session saw (see the module's doc)."""
    if not events:
        return False, "no release seen since this replica started watching the lease"
    (what, _, epoch), pid = events[-1][0].partition(" "), events[-1][1]
    if what == "released":
        acquirers = {p for payload, p in events if payload.startswith("acquired ")}
        if pid in holders | acquirers:
            return True, released_cleanly(epoch)
        return False, f"a release of epoch {epoch} came from a session never seen holding the lease (by hand?)"
    return False, f"the session of epoch {epoch} ended without releasing the lease"


# What the registry asks of a kind (spiffctl.databases.Kind) beyond the probe above.

KEEP_READER = True


def driver_errors() -> tuple[type[BaseException], ...]:
    import psycopg

    return (psycopg.Error, OSError)


def open_lock(endpoint: Endpoint, purpose: str, timeout: float) -> AdvisoryLock:
    return AdvisoryLock(endpoint, purpose, timeout)


def open_session(
    endpoint: Endpoint, name: str, ttl: float, *, timeout: float, host: str, pid: int, linger: float
) -> PostgresSession:
    return PostgresSession(endpoint, name, ttl, timeout=timeout, host=host, pid=pid)


def connect_reader(endpoint: Endpoint, timeout: float) -> Any:
    return connect(endpoint, timeout)  # autocommit: every read sees the latest commit


def read_revision(cur: Any) -> str:
    return dbapi.read_revision(cur, missing_table, hidden_table)


if TYPE_CHECKING:  # mypy checks this module against the Protocol
    import spiffctl.databases.postgres as _this
    from spiffctl.databases import Kind

    _kind: Kind = _this
