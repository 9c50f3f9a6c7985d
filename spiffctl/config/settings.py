"""Environment -> typed settings, with the backend's own semantics and the traps it misses.

Everything here mirrors what spiffworkflow-backend does at ``create_app`` time:

* an empty variable counts as unset;
* booleans, numbers and choices are judged by the variables table (:mod:`spiffctl.config.variables`),
  each as its reader judges it (``CELERY_ENABLED=no`` would *enable* Celery in the backend,
  ``UPGRADE_DB=True`` is false for the API script: both are refused);
* the database type comes from the URI scheme (part before ``+``, ``postgresql`` -> ``postgres``)
  and otherwise from ``SPIFFWORKFLOW_BACKEND_DATABASE_TYPE``, default ``mysql``;
* without a URI the backend derives one per type with database ``spiffworkflow_backend_<ENV>``.

:func:`load` never raises for a rule violation: it collects :class:`Problem` records so that
``run`` can print them all at once and ``doctor`` can show each as a check. It raises only when
the environment cannot even be read (``*_FILE`` secrets).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from spiffctl.config import variables
from spiffctl.config.problem import Problem, Severity
from spiffctl.config.secrets import resolve_file_secrets
from spiffctl.config.variables import tcp_port
from spiffctl.roles import CELERY_ENABLED, Need, Role
from spiffctl.util import paths, urls
from spiffctl.util.errors import ConfigError
from spiffctl.util.redact import Redactor, env_secrets, quote, quote_url, redact_url

P = "SPIFFWORKFLOW_BACKEND_"
DATABASE_URI = P + "DATABASE_URI"
DATABASE_TYPE = P + "DATABASE_TYPE"
DATABASE_PASSWORD = P + "DATABASE_PASSWORD"
BACKEND_ENV = P + "ENV"
BROKER_URL = P + "CELERY_BROKER_URL"
RESULT_BACKEND = P + "CELERY_RESULT_BACKEND"
SQS_URL = P + "CELERY_SQS_URL"
S3_BUCKET = P + "CELERY_RESULT_S3_BUCKET"
BACKFILL = P + "PROCESS_INSTANCE_METADATA_BACKFILL_ENABLED"
EVENT_NOTIFIER = P + "EVENT_NOTIFIER_PROCESS_MODEL"
SECRET_KEY = "FLASK_SESSION_SECRET_KEY"
BPMN_DIR = P + "BPMN_SPEC_ABSOLUTE_DIR"
PORT = P + "PORT"
PATH_PREFIX = P + "WSGI_PATH_PREFIX"
APPLICATION_ROOT = P + "APPLICATION_ROOT"
CONNECTOR_PROXY_URL = P + "CONNECTOR_PROXY_URL"

DEFAULT_ENV = "local_development"
# Where a derived database URI "comes from": the variable an operator sets to change it.
DERIVED = f"{DATABASE_URI} (unset; derived from {DATABASE_TYPE})"
DEFAULT_BROKER = "redis://localhost"
DEFAULT_PORT = 7000
DATABASE_TYPES = ("mysql", "postgres", "sqlite")
BACKEND_MARKER = "bin/boot_server_in_docker"
BACKEND_DIR_FLAG = "--backend-dir (SPIFFCTL_BACKEND_DIR)"

SQL_KINDS = ("postgres", "mysql", "sqlite")

# scheme -> probe kind, per place a URL can appear.
DB_SCHEMES = {"mysql": "mysql", "postgresql": "postgres", "sqlite": "sqlite"}
_BACKEND_DRIVERS = {"mysql": {"", "mysqldb"}, "postgresql": {"", "psycopg2"}, "sqlite": {"", "pysqlite"}}
_BROKER_SCHEMES = {
    "redis": "redis",
    "rediss": "redis",
    "amqp": "amqp",
    "amqps": "amqp",
    "pyamqp": "amqp",
    "sqs": "sqs",
}
_RESULT_SCHEMES = {"redis": "redis", "rediss": "redis", "rpc": "rpc", "s3": "s3"}

Getter = Callable[[str], "str | None"]


@dataclass(frozen=True)
class Endpoint:
    """A dependency to reach: what kind of server, at which URL, configured by which variable.

    ``url`` may hold a password; show :attr:`display` instead.
    """

    need: Need | None  # None for endpoints no role needs (connector proxy, API status)
    kind: str  # probe kind: postgres, mysql, sqlite, redis, amqp, sqs, rpc, s3
    url: str
    variable: str

    @property
    def grammar(self) -> urls.Grammar:
        """Databases are read by SQLAlchemy, everything else by urllib (kombu, redis-py)."""
        return "sqlalchemy" if self.kind in SQL_KINDS else "standard"

    @property
    def parts(self) -> urls.URL:
        """The URL as its consumer reads it (endpoints are only made from URLs that parse)."""
        return urls.parse(self.url, self.grammar)

    @property
    def display(self) -> str:
        return redact_url(self.url, self.grammar)


@dataclass(frozen=True)
class Settings:
    env: dict[str, str]  # the resolved environment a child receives (secrets files applied)
    backend_dir: Path
    backend_env: str
    database_type: str
    database_type_source: str  # the variable that decided it, or "default"
    celery_enabled: bool
    endpoints: dict[Need, Endpoint]
    problems: tuple[Problem, ...]
    redactor: Redactor = field(repr=False)

    def endpoint(self, need: Need) -> Endpoint | None:
        return self.endpoints.get(need)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def flag(self, name: str) -> bool:
        """A backend boolean as its reader takes it (invalid values were already reported as problems)."""
        return variables.truth(name, self.env.get(name))

    @property
    def port(self) -> int | None:
        """The API's port; ``None`` when the variable is not a port (reported as a problem)."""
        value = self.env.get(PORT)
        return tcp_port(value) if value else DEFAULT_PORT

    @property
    def status_path(self) -> str:
        prefix = (self.env.get(PATH_PREFIX) or "").strip("/")
        return f"/{prefix}/v1.0/status" if prefix else "/v1.0/status"


def default_backend_dir(cwd: Path | None = None) -> Path:
    """``/app`` when it holds the backend (its image), else the current directory."""
    app = Path("/app")
    if (app / BACKEND_MARKER).exists():
        return app
    return cwd or Path.cwd()


def _backend_root(path: Path) -> Path:
    why = paths.too_long(str(path))
    try:
        if why is None:
            return path.resolve()
    except OSError as e:  # a symlink loop, a folder we may not search
        why = e.strerror
    raise ConfigError(f"{BACKEND_DIR_FLAG}: the folder cannot be used: {why}; point it at the backend root")


def load(environ: Mapping[str, str] | None = None, backend_dir: Path | None = None) -> Settings:
    """Read the environment the way the backend would, collecting every problem found."""
    raw = dict(os.environ if environ is None else environ)
    env, file_secrets = resolve_file_secrets(raw)
    backend = _backend_root(backend_dir or default_backend_dir())
    redactor = Redactor(file_secrets | env_secrets(env))
    problems: list[Problem] = list(variables.problems(env))

    def get(name: str) -> str | None:
        # The backend treats an empty variable exactly like an unset one.
        return env.get(name) or None

    def boolean(name: str) -> bool:
        return variables.truth(name, get(name))

    backend_env = get(BACKEND_ENV) or DEFAULT_ENV
    celery = boolean(CELERY_ENABLED)
    endpoints: dict[Need, Endpoint] = {}

    db_type, db_source, db_endpoint = _database(get, backend_env, backend, problems)
    if db_endpoint:
        endpoints[Need.DATABASE] = db_endpoint

    if celery:
        broker = _broker(get, problems)
        if broker:
            endpoints[Need.BROKER] = broker
        result = _result_backend(get, problems)
        if result:
            endpoints[Need.RESULT_BACKEND] = result
    else:
        for name in (BACKFILL,):
            if boolean(name):
                problems.append(
                    Problem(name, "needs Celery, which is disabled", f"set {CELERY_ENABLED}=true or unset {name}")
                )
        if get(EVENT_NOTIFIER):
            problems.append(
                Problem(
                    EVENT_NOTIFIER,
                    "needs Celery, which is disabled",
                    f"set {CELERY_ENABLED}=true or unset {EVENT_NOTIFIER}",
                )
            )

    for name in (SECRET_KEY, BPMN_DIR):
        if not get(name):
            fix = (
                "set it to a long random string (or use FLASK_SESSION_SECRET_KEY_FILE)"
                if name == SECRET_KEY
                else "set it to the absolute path of the process-model folder"
            )
            problems.append(Problem(name, "is not set; the backend refuses to start without it", fix))
    bpmn = get(BPMN_DIR)
    if bpmn and not os.path.isabs(bpmn):
        problems.append(
            Problem(
                BPMN_DIR,
                f"{quote(bpmn)} is a relative path; the backend needs an absolute one (its scripts and spiffctl "
                "run from different folders)",
                "set it to the absolute path of the process-model folder, e.g. /app/process_models",
            )
        )

    app_root = get(APPLICATION_ROOT)
    if app_root and app_root != "/":
        problems.append(
            Problem(
                APPLICATION_ROOT,
                "was renamed; the API script exits when it is set",
                f"use {PATH_PREFIX} instead and unset {APPLICATION_ROOT}",
            )
        )
    connector = get(CONNECTOR_PROXY_URL)
    if connector:
        # A warning: the backend starts without it; only service tasks fail.
        _check_url(CONNECTOR_PROXY_URL, connector, problems, severity="warning")

    # "check SPIFFWORKFLOW_BACKEND_DATABASE_URI" is no help when the operator set ..._URI_FILE.
    from_files = {name for name in env if raw.get(f"{name}_FILE") and name not in raw}

    def named(variable: str) -> str:
        first, _, rest = variable.partition(" ")
        return f"{first}_FILE{' ' + rest if rest else ''}" if first in from_files else variable

    endpoints = {need: replace(e, variable=named(e.variable)) for need, e in endpoints.items()}
    return Settings(
        env=env,
        backend_dir=backend,
        backend_env=backend_env,
        database_type=db_type,
        database_type_source=db_source,
        celery_enabled=celery,
        endpoints=endpoints,
        # Problems quote operator values, which can hold a URL with a password in any variable.
        problems=tuple(replace(p, message=redactor(p.message), fix=redactor(p.fix)) for p in problems),
        redactor=redactor,
    )


def role_problems(settings: Settings, role: Role) -> list[Problem]:
    """Problems that only matter for ``role`` (on top of :attr:`Settings.problems`)."""
    out: list[Problem] = []
    reported = any(p.variable == CELERY_ENABLED for p in settings.problems)  # e.g. "yes": one line is enough
    if role.requires_celery and not settings.celery_enabled and not reported:
        out.append(
            Problem(
                CELERY_ENABLED,
                f"is not true, so there is nothing for the {role.name} role to do",
                f"set {CELERY_ENABLED}=true for every role (api, background and worker alike) or do not run a worker",
            )
        )
    return out


def _scheme(url: str) -> tuple[str, str]:
    """(scheme, driver) of ``mysql+pymysql://...`` -> ("mysql", "pymysql")."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    base, _, driver = scheme.partition("+")
    return base, driver


def _check_url(
    variable: str,
    url: str,
    problems: list[Problem],
    grammar: urls.Grammar = "standard",
    severity: Severity = "error",
) -> bool:
    """Malformed URLs become problems here, so probes can trust what they are given."""
    shown = quote_url(url)
    # Angle brackets: the redactor leaves a template alone (it would mask "user:password@").
    form = "write it as <scheme>://<user>:<password>@<host>:<port>/<name>"
    try:
        parts = urls.parse(url, grammar)
    except urls.URLError as e:
        # A reserved character in the password: the fix is its encoding, not the URL's shape.
        reason, encode, how = str(e).partition(": percent-encode")
        problems.append(Problem(variable, f"{shown} is malformed: {reason}", encode[2:] + how or form, severity))
        return False
    if not parts.host and "host" not in parts.params:
        problems.append(Problem(variable, f"{shown} has no host", form, severity))
        return False
    return True


def _database(
    get: Getter,
    backend_env: str,
    backend: Path,
    problems: list[Problem],
) -> tuple[str, str, Endpoint | None]:
    uri = get(DATABASE_URI)
    type_var = get(DATABASE_TYPE)
    if uri:
        scheme, driver = _scheme(uri)
        db_type = "postgres" if scheme == "postgresql" else scheme
        source = DATABASE_URI
        if scheme == "postgres":
            problems.append(
                Problem(
                    DATABASE_URI,
                    "uses the scheme postgres://, which SQLAlchemy 2 does not know",
                    "write postgresql:// instead",
                )
            )
            return db_type, source, None
        if scheme == "mariadb":
            problems.append(
                Problem(
                    DATABASE_URI,
                    "uses the scheme mariadb://, which the backend rejects",
                    "write mysql:// (MariaDB speaks the MySQL protocol)",
                )
            )
            return db_type, source, None
        if scheme not in DB_SCHEMES:
            problems.append(
                Problem(
                    DATABASE_URI,
                    f"has an unsupported scheme {scheme + '://' if scheme else '(none)'}",
                    "use postgresql://, mysql:// or sqlite:///",
                )
            )
            return db_type or "unknown", source, None
        if driver not in _BACKEND_DRIVERS[scheme]:
            problems.append(
                Problem(
                    DATABASE_URI,
                    f"names the driver {driver!r}, which the backend image does not ship",
                    f"write {scheme}:// (the backend uses its own driver)",
                    "warning",
                )
            )
        if type_var and type_var != db_type:
            problems.append(
                Problem(
                    DATABASE_TYPE,
                    f"says {quote(type_var)} but {DATABASE_URI} is {db_type}; the URI wins",
                    f"unset {DATABASE_TYPE} or make it match",
                    "warning",
                )
            )
        if scheme == "sqlite":
            problem = urls.sqlite_problem(uri)
            if problem:
                problems.append(Problem(DATABASE_URI, *problem))
                return db_type, source, None
            return db_type, source, Endpoint(Need.DATABASE, "sqlite", _sqlite_absolute(uri, backend), DATABASE_URI)
        if not _check_url(DATABASE_URI, uri, problems, "sqlalchemy"):
            return db_type, source, None
        return db_type, source, Endpoint(Need.DATABASE, DB_SCHEMES[scheme], uri, DATABASE_URI)

    db_type = type_var or "mysql"
    source = DATABASE_TYPE if type_var else "default"
    if db_type not in DATABASE_TYPES:  # reported by the variables table
        return db_type, source, None
    if not type_var:
        problems.append(
            Problem(
                DATABASE_TYPE,
                "is not set, so the backend defaults to mysql at root@127.0.0.1",
                f"set {DATABASE_URI} (or {DATABASE_TYPE}) explicitly",
                "warning",
            )
        )
    name = f"spiffworkflow_backend_{backend_env}"
    if db_type == "sqlite":
        url = f"sqlite:///{backend / 'src' / 'instance' / f'db_{backend_env}.sqlite3'}"
        return db_type, source, Endpoint(Need.DATABASE, "sqlite", url, DERIVED)
    if db_type == "postgres":
        url = f"postgresql://spiffworkflow_backend:spiffworkflow_backend@localhost:5432/{name}"
        return db_type, source, Endpoint(Need.DATABASE, "postgres", url, DERIVED)
    # Exactly as the backend builds it: the password is not percent-encoded, so SQLAlchemy reads
    # it up to its first "@" and decodes "%xx" in it; say so rather than probe with the same
    # wrong password and blame the server.
    password = get(DATABASE_PASSWORD) or ""
    url = f"mysql+mysqldb://root:{password}@127.0.0.1/{name}"
    # A refused login is about the password: name the variable that holds it.
    where = f"{DATABASE_PASSWORD} (the URI is derived from {DATABASE_TYPE})" if password else DERIVED
    try:
        read = urls.parse(url, "sqlalchemy").password
    except urls.URLError:
        read = None
    if read != password:
        problems.append(
            Problem(
                DATABASE_PASSWORD,
                "holds '@' or a %xx sequence, which the backend puts into its database URI unencoded, so the "
                "password it sends differs from this one",
                f"set {DATABASE_URI}=mysql://root:<percent-encoded password>@127.0.0.1/<database> instead",
            )
        )
        return db_type, source, None
    return db_type, source, Endpoint(Need.DATABASE, "mysql", url, where)


def _sqlite_absolute(uri: str, backend: Path) -> str:
    """SQLAlchemy reads ``sqlite:///rel`` relative to the cwd, which is the backend root."""
    path = uri.split("://", 1)[1]
    path = path[1:] if path.startswith("/") else path  # sqlite:///x -> "x"; sqlite:////abs -> "/abs"
    path = path.split("?", 1)[0]
    if not path or path == ":memory:":
        return "sqlite://"
    p = Path(path)
    return f"sqlite:///{p if p.is_absolute() else backend / p}"


def _broker(get: Getter, problems: list[Problem]) -> Endpoint | None:
    url = get(BROKER_URL) or DEFAULT_BROKER
    scheme, _ = _scheme(url)
    kind = _BROKER_SCHEMES.get(scheme)
    if kind is None:
        problems.append(
            Problem(
                BROKER_URL,
                f"has an unsupported scheme {scheme + '://' if scheme else '(none)'}",
                "use redis://, rediss://, amqp:// (RabbitMQ) or sqs://",
            )
        )
        return None
    if kind == "sqs":
        if not get(SQS_URL):
            problems.append(
                Problem(
                    SQS_URL,
                    "is not set but the broker is SQS; the backend raises at start",
                    "set it to the queue URL (https://sqs.<region>.amazonaws.com/<account>/<queue>)",
                )
            )
            return None
        queue = get(SQS_URL) or ""
        if not _check_url(SQS_URL, queue, problems):
            return None
        return Endpoint(Need.BROKER, "sqs", queue, SQS_URL)
    if not _check_url(BROKER_URL, url, problems):
        return None
    return Endpoint(Need.BROKER, kind, url, BROKER_URL)


def _result_backend(get: Getter, problems: list[Problem]) -> Endpoint | None:
    url = get(RESULT_BACKEND)
    if not url:
        return None
    scheme, _ = _scheme(url)
    if url.lower().startswith("db+"):
        inner = url[3:]
        inner_scheme, _ = _scheme(inner)
        kind = DB_SCHEMES.get(inner_scheme)
        if kind == "sqlite":
            return None
        if kind:
            ok = _check_url(RESULT_BACKEND, inner, problems, "sqlalchemy")
            return Endpoint(Need.RESULT_BACKEND, kind, inner, RESULT_BACKEND) if ok else None
        problems.append(
            Problem(
                RESULT_BACKEND,
                f"has an unsupported database {inner_scheme or '(none)'}",
                "use db+postgresql:// or db+mysql://, or unset it (results are ignored)",
            )
        )
        return None
    kind = _RESULT_SCHEMES.get(scheme)
    if kind is None:
        problems.append(
            Problem(
                RESULT_BACKEND,
                f"uses {scheme or '(no scheme)'}, which spiffctl cannot check",
                "it is optional (results are ignored); unset it unless you need it",
                "warning",
            )
        )
        return None
    if kind == "s3" and not get(S3_BUCKET):
        problems.append(
            Problem(
                S3_BUCKET,
                "is not set but the result backend is s3://",
                "set the bucket name, or unset the result backend (results are ignored)",
            )
        )
        return None
    if kind in ("rpc", "s3"):
        # rpc:// rides on the broker, which is checked anyway; S3 needs AWS credentials to probe.
        return None
    if not _check_url(RESULT_BACKEND, url, problems):
        return None
    return Endpoint(Need.RESULT_BACKEND, kind, url, RESULT_BACKEND)
