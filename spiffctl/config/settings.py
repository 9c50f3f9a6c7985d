"""Environment -> typed settings, with the backend's own semantics and the traps it misses.

Everything here mirrors what spiffworkflow-backend does at ``create_app`` time:

* an empty variable counts as unset;
* booleans, numbers and choices are judged by the variables table (:mod:`spiffctl.config.variables`),
  each as its reader judges it (``CELERY_ENABLED=no`` would *enable* Celery in the backend,
  ``UPGRADE_DB=True`` is false for the API script: both are refused);
* the database comes from the backend's URI rules (:mod:`spiffctl.config.database_uri`).

:func:`load` is table-driven: one endpoint rule per need (:data:`ENDPOINT_RULES`) and a list of
small checks (:data:`CHECKS`). It never raises for a rule violation: it collects :class:`Problem`
records so that ``run`` can print them all at once and ``doctor`` can show each as a check. It
raises only when the environment cannot even be read (``*_FILE`` secrets).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from spiffctl.config import database_uri, variables
from spiffctl.config.database_uri import DB_SCHEMES as DB_SCHEMES
from spiffctl.config.database_uri import SQL_KINDS, split_scheme, unsupported
from spiffctl.config.database_uri import P as P
from spiffctl.config.problem import Problem, Severity
from spiffctl.config.secrets import resolve_file_secrets
from spiffctl.config.variables import tcp_port
from spiffctl.roles import CELERY_ENABLED, ROLES, Need, Role
from spiffctl.util import paths, urls
from spiffctl.util.errors import ConfigError
from spiffctl.util.redact import Redactor, env_secrets, quote, quote_url, redact_url

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
DEFAULT_BROKER = "redis://localhost"
DEFAULT_PORT = 7000
BACKEND_MARKER = ROLES["api"].script  # a folder holding the API script holds the backend
BACKEND_DIR_FLAG = "--backend-dir (SPIFFCTL_BACKEND_DIR)"

# scheme -> probe kind, per place a URL can appear (databases: see database_uri).
_BROKER_SCHEMES = {"redis": "redis", "rediss": "redis", "amqp": "amqp", "amqps": "amqp", "pyamqp": "amqp", "sqs": "sqs"}
_RESULT_SCHEMES = {"redis": "redis", "rediss": "redis", "rpc": "rpc", "s3": "s3"}


@dataclass(frozen=True)
class Endpoint:
    """A dependency to reach: what kind of server, at which URL, configured by which variable.

    ``url`` may hold a password; show :attr:`display` instead.
    """

    need: Need | None  # None for endpoints no role needs (connector proxy, API status)
    kind: str  # probe kind: a database kind (database_uri.SQL_KINDS), redis, amqp, sqs, rpc, s3
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


@dataclass(frozen=True)
class _Reading:
    """The resolved environment as the backend reads it, for the rules below."""

    env: Mapping[str, str]
    backend: Path

    def get(self, name: str) -> str | None:
        # The backend treats an empty variable exactly like an unset one.
        return self.env.get(name) or None

    def flag(self, name: str) -> bool:
        return variables.truth(name, self.get(name))

    @property
    def backend_env(self) -> str:
        return self.get(BACKEND_ENV) or DEFAULT_ENV

    @property
    def celery(self) -> bool:
        return self.flag(CELERY_ENABLED)


# A rule appends what is wrong to the problems; an endpoint rule also answers the endpoint to probe.
EndpointRule = Callable[[_Reading, list[Problem]], "Endpoint | None"]
Check = Callable[[_Reading, list[Problem]], None]


def load(environ: Mapping[str, str] | None = None, backend_dir: Path | None = None) -> Settings:
    """Read the environment the way the backend would, collecting every problem found."""
    raw = dict(os.environ if environ is None else environ)
    env, file_secrets = resolve_file_secrets(raw)
    reading = _Reading(env, _backend_root(backend_dir or default_backend_dir()))
    redactor = Redactor(file_secrets | env_secrets(env))
    problems: list[Problem] = list(variables.problems(env))
    endpoints: dict[Need, Endpoint] = {}
    for need, rule, celery_only in ENDPOINT_RULES:
        endpoint = rule(reading, problems) if reading.celery or not celery_only else None
        if endpoint:
            endpoints[need] = endpoint
    for check in CHECKS:
        check(reading, problems)
    named = _file_named(raw, env)
    return Settings(
        env=env,
        backend_dir=reading.backend,
        backend_env=reading.backend_env,
        celery_enabled=reading.celery,
        endpoints={need: replace(e, variable=named(e.variable)) for need, e in endpoints.items()},
        # Problems quote operator values, which can hold a URL with a password in any variable.
        problems=tuple(replace(p, message=redactor(p.message), fix=redactor(p.fix)) for p in problems),
        redactor=redactor,
    )


def _file_named(raw: Mapping[str, str], env: Mapping[str, str]) -> Callable[[str], str]:
    """``check SPIFFWORKFLOW_BACKEND_DATABASE_URI`` is no help when the operator set ``..._URI_FILE``."""
    from_files = {name for name in env if raw.get(f"{name}_FILE") and name not in raw}

    def named(variable: str) -> str:
        first, _, rest = variable.partition(" ")
        return f"{first}_FILE{' ' + rest if rest else ''}" if first in from_files else variable

    return named


def _database(reading: _Reading, problems: list[Problem]) -> Endpoint | None:
    target = database_uri.database(reading.get, reading.backend_env, reading.backend, problems)
    if target is None:
        return None
    if not target.check_shape:
        return Endpoint(Need.DATABASE, target.kind, target.url, target.variable)
    return _checked(Need.DATABASE, target.kind, target.url, target.variable, problems, "sqlalchemy")


def _celery_only(reading: _Reading, problems: list[Problem]) -> None:
    if reading.celery:
        return
    for name, used in ((BACKFILL, reading.flag(BACKFILL)), (EVENT_NOTIFIER, bool(reading.get(EVENT_NOTIFIER)))):
        if used:
            problems.append(
                Problem(name, "needs Celery, which is disabled", f"set {CELERY_ENABLED}=true or unset {name}")
            )


# Variables the backend refuses to start without -> how to set them.
_REQUIRED = {
    SECRET_KEY: "set it to a long random string (or use FLASK_SESSION_SECRET_KEY_FILE)",
    BPMN_DIR: "set it to the absolute path of the process-model folder",
}


def _required(reading: _Reading, problems: list[Problem]) -> None:
    for name, fix in _REQUIRED.items():
        if not reading.get(name):
            problems.append(Problem(name, "is not set; the backend refuses to start without it", fix))


def _bpmn_absolute(reading: _Reading, problems: list[Problem]) -> None:
    bpmn = reading.get(BPMN_DIR)
    if bpmn and not os.path.isabs(bpmn):
        problems.append(
            Problem(
                BPMN_DIR,
                f"{quote(bpmn)} is a relative path; the backend needs an absolute one (its scripts and spiffctl "
                "run from different folders)",
                "set it to the absolute path of the process-model folder, e.g. /app/process_models",
            )
        )


def _application_root(reading: _Reading, problems: list[Problem]) -> None:
    app_root = reading.get(APPLICATION_ROOT)
    if app_root and app_root != "/":
        problems.append(
            Problem(
                APPLICATION_ROOT,
                "was renamed; the API script exits when it is set",
                f"use {PATH_PREFIX} instead and unset {APPLICATION_ROOT}",
            )
        )


def _connector(reading: _Reading, problems: list[Problem]) -> None:
    connector = reading.get(CONNECTOR_PROXY_URL)
    if connector:
        # A warning: the backend starts without it; only service tasks fail.
        _check_url(CONNECTOR_PROXY_URL, connector, problems, severity="warning")


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


def _checked(
    need: Need, kind: str, url: str, variable: str, problems: list[Problem], grammar: urls.Grammar = "standard"
) -> Endpoint | None:
    return Endpoint(need, kind, url, variable) if _check_url(variable, url, problems, grammar) else None


def _broker(reading: _Reading, problems: list[Problem]) -> Endpoint | None:
    url = reading.get(BROKER_URL) or DEFAULT_BROKER
    scheme, _ = split_scheme(url)
    kind = _BROKER_SCHEMES.get(scheme)
    if kind is None:
        problems.append(
            Problem(BROKER_URL, unsupported(scheme), "use redis://, rediss://, amqp:// (RabbitMQ) or sqs://")
        )
        return None
    if kind != "sqs":
        return _checked(Need.BROKER, kind, url, BROKER_URL, problems)
    queue = reading.get(SQS_URL)
    if not queue:
        problems.append(
            Problem(
                SQS_URL,
                "is not set but the broker is SQS; the backend raises at start",
                "set it to the queue URL (https://sqs.<region>.amazonaws.com/<account>/<queue>)",
            )
        )
        return None
    return _checked(Need.BROKER, "sqs", queue, SQS_URL, problems)


def _result_backend(reading: _Reading, problems: list[Problem]) -> Endpoint | None:
    url = reading.get(RESULT_BACKEND)
    if not url:
        return None
    if url.lower().startswith("db+"):
        return _result_database(url[3:], problems)
    scheme, _ = split_scheme(url)
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
    if kind == "s3" and not reading.get(S3_BUCKET):
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
    return _checked(Need.RESULT_BACKEND, kind, url, RESULT_BACKEND, problems)


def _result_database(url: str, problems: list[Problem]) -> Endpoint | None:
    """Celery's ``db+<SQLAlchemy URL>`` result backend."""
    scheme, _ = split_scheme(url)
    kind = DB_SCHEMES.get(scheme)
    if kind is None:
        fix = database_uri.RESULT_DATABASES_FIX
        problems.append(Problem(RESULT_BACKEND, f"has an unsupported database {scheme or '(none)'}", fix))
        return None
    if kind == "sqlite":
        return None
    return _checked(Need.RESULT_BACKEND, kind, url, RESULT_BACKEND, problems, "sqlalchemy")


# Per need, the rule that finds its endpoint; Celery's are read only when Celery is on, as the backend does.
ENDPOINT_RULES: tuple[tuple[Need, EndpointRule, bool], ...] = (
    (Need.DATABASE, _database, False),
    (Need.BROKER, _broker, True),
    (Need.RESULT_BACKEND, _result_backend, True),
)
# The checks of variables no endpoint stands for, in the order their problems are reported.
CHECKS: tuple[Check, ...] = (_celery_only, _required, _bpmn_absolute, _application_root, _connector)
