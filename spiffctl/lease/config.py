"""Where the Background lease lives and how long it lasts: ``SPIFFCTL_LOCK*`` variables.

* ``SPIFFCTL_LOCK``: ``on`` (default) or ``off``. Off runs the Background without a lease, which
  is only safe when exactly one Background replica exists; spiffctl warns.
* ``SPIFFCTL_LOCK_URL``: where the lease lives: a ``redis://`` or ``rediss://`` URL, or a database
  URL of a kind the backend takes (its URI schemes, ``postgresql://``, ``sqlite:///`` ...). Default:
  the Celery broker URL when it is Redis (set explicitly, or the backend's default
  ``redis://localhost`` with Celery on); else the backend's own database
  (:mod:`spiffctl.lease.stores.database`).
* ``SPIFFCTL_LOCK_KEY``: default derived from the database identity (kind, host, port, name; never
  the password), so two installations sharing one Redis never block each other.
* ``SPIFFCTL_LOCK_TTL``: seconds, default 15 (client-go's lease duration), 3 to 600.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from spiffctl import databases
from spiffctl.config import variables
from spiffctl.config.settings import BROKER_URL, DB_SCHEMES, DEFAULT_BROKER, Endpoint, Settings
from spiffctl.roles import Need
from spiffctl.util import urls
from spiffctl.util.errors import ConfigError
from spiffctl.util.redact import quote, quote_url, redact_url

LOCK = "SPIFFCTL_LOCK"
LOCK_URL = "SPIFFCTL_LOCK_URL"
LOCK_KEY = "SPIFFCTL_LOCK_KEY"
LOCK_TTL = variables.LOCK_TTL
# Internal: set by `run --role all` on the Background program after it has said, once, why that
# program runs without a lease; the role itself then does not say it again.
LOCK_OFF_EXPLAINED = "SPIFFCTL_LOCK_OFF_EXPLAINED"

KEY_PREFIX = "spiffctl:background:"


@dataclass(frozen=True)
class LeaseConfig:
    enabled: bool
    url: str | None  # secret-bearing; show `display`. None: no usable database either
    key: str
    ttl: float
    source: str  # the variable the URL came from
    database: Endpoint | None = None  # set when the lease lives in a database, not in Redis

    @property
    def store(self) -> str:
        """``Redis`` or the database's kind, for messages."""
        if self.database is None:
            return "Redis"
        return databases.NAMES[self.database.kind]

    @property
    def display(self) -> str:
        if self.database is not None:
            return self.database.display
        return redact_url(self.url) if self.url else "(none)"


def lease_config(settings: Settings) -> LeaseConfig:
    """The lease configuration; raises :class:`ConfigError` for values that cannot work.

    A missing Redis is *not* raised here (``url`` is ``None``): callers decide whether that is
    fatal (``run --role background``) or a warning (all-in-one on one box, doctor).
    """
    env = settings.env
    mode = (env.get(LOCK) or "on").strip().lower()
    if mode not in ("on", "off"):
        raise ConfigError(f"{LOCK}: {env.get(LOCK)!r} is not on or off; set {LOCK}=off to run without a lease")
    url, source = _url(settings)
    database = None
    if url is None:
        database = settings.endpoint(Need.DATABASE)
        if database is not None:
            url, source = database.url, database.variable
    elif urls.scheme_of(url).lower().split("+", 1)[0] in DB_SCHEMES:
        database = _database_url(url, source)
    else:
        _check_redis_url(url, source)
    if database is not None and database.kind == "sqlite":
        _check_sqlite_file(database, source)
    key = env.get(LOCK_KEY) or default_key(settings)
    return LeaseConfig(
        enabled=mode == "on", url=url, key=key, ttl=_ttl(env.get(LOCK_TTL)), source=source, database=database
    )


def default_key(settings: Settings) -> str:
    db = settings.endpoint(Need.DATABASE)
    if db is None:
        identity = "no-database"
    elif db.kind == "sqlite":
        # Not the hostname: every container has its own, so two replicas sharing one SQLite file
        # would get two keys and two schedulers. Two unrelated SQLite installs on one Redis with
        # the same path wait on each other instead, visibly (standby names the holder).
        identity = f"sqlite:{db.url.split('://', 1)[1]}"
    else:
        parts = db.parts
        identity = f"{db.kind}:{parts.host}:{parts.port}:{parts.path.strip('/')}"
    return KEY_PREFIX + hashlib.sha256(identity.encode()).hexdigest()[:16]


def _url(settings: Settings) -> tuple[str | None, str]:
    env = settings.env
    if env.get(LOCK_URL):
        return env[LOCK_URL], LOCK_URL
    broker = env.get(BROKER_URL) or (DEFAULT_BROKER if settings.celery_enabled else "")
    if broker.split("://", 1)[0].lower() in ("redis", "rediss"):
        return broker, BROKER_URL
    return None, LOCK_URL


def why_database(settings: Settings) -> str:
    """Why the lease lives in the database, in the operator's terms (when no Redis was found)."""
    if settings.env.get(LOCK_URL):
        return f"{LOCK_URL} names a database"
    if settings.env.get(BROKER_URL):
        return f"{LOCK_URL} is not set and the Celery broker ({BROKER_URL}) is not Redis"
    return f"{LOCK_URL} is not set and Celery is off, so there is no Redis broker to share"


# Not written as a URL: a hint with "://...@" in it would be masked like a real one.
FORM = "write it as redis:// (or rediss://) then [:password@]host:port/db"
SET_LOCK_URL = f"set {LOCK_URL} to a Redis or to a {databases.listing()} file database"


def _check_sqlite_file(database: Endpoint, source: str) -> None:
    """The SQLite lease is a lock file beside the database file: there must be one, at a path
    that means the same in every replica."""
    from spiffctl.databases.sqlite import path_of

    if database.url.split("://", 1)[1].split("?", 1)[0] in ("", "/", "/:memory:"):
        raise ConfigError(f"{source}: an in-memory SQLite database cannot hold the lease; {SET_LOCK_URL}")
    path = path_of(database)
    if path is None or not path.is_absolute():
        raise ConfigError(
            f"{source}: the SQLite lease needs the database file's absolute path, "
            "sqlite:////path/to/db.sqlite3 (four slashes)"
        )
    problem = urls.sqlite_problem(database.url)
    if problem:
        raise ConfigError(f"{source}: {'; '.join(problem)}")


def _database_url(url: str, source: str) -> Endpoint:
    try:
        urls.parse(url, "sqlalchemy")
    except urls.URLError as e:
        raise ConfigError(f"{source}: {quote_url(url)} is malformed: {e}") from None
    kind = DB_SCHEMES[urls.scheme_of(url).lower().split("+", 1)[0]]
    return Endpoint(Need.DATABASE, kind, url, source)


def _check_redis_url(url: str, source: str) -> None:
    shown = quote_url(url)
    if urls.scheme_of(url).lower() not in ("redis", "rediss"):
        raise ConfigError(f"{source}: {shown} is neither a Redis nor a database URL; {SET_LOCK_URL}")
    try:
        parts = urls.parse(url, "standard")
    except urls.URLError as e:
        raise ConfigError(f"{source}: {shown} is malformed: {e}; {FORM}") from None
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise ConfigError(f"{source}: {shown} is malformed: its database {quote(db)} is not a number; {FORM}")
    if not parts.host and not parts.path.startswith("/"):
        raise ConfigError(f"{source}: {shown} has no host; {FORM}")


def _ttl(value: str | None) -> float:
    return variables.number(LOCK_TTL, value)
