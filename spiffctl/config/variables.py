"""THE table of environment variables: spiffctl's own and the backend's that spiffctl reads.

Each row has a type and a range. :func:`problems` judges every row's value (``settings.load``
adds the findings to its problems, so ``run`` refuses with 78 and ``doctor`` lists them), the
code reads its numbers through :func:`number`, and the README's variables table is
:func:`markdown` (``python -m spiffctl.config.variables`` prints it; a test keeps the README equal).

Booleans are judged as their reader judges them, because that reader is what the operator's
value actually drives:

* ``bool``: the backend's Python configuration (``config_from_env`` with a boolean default)
  turns ``true``/``false`` in any case into a boolean and keeps any other text, which is truthy;
* ``bash-bool``: the API script tests ``[[ "$X" == "true" ]]``: exactly ``true`` is true and
  everything else, ``True`` and ``yes`` included, is silently false.

URLs, paths and free text are checked by :mod:`spiffctl.config.settings` and the lease configuration,
which know their context (the scheme a consumer accepts, the role that reads them).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from spiffctl.config.problem import Problem
from spiffctl.roles import ROLE_CHOICES
from spiffctl.roles import STOP_GRACE as DEFAULT_STOP_GRACE
from spiffctl.util import numbers
from spiffctl.util.errors import CONFIG
from spiffctl.util.redact import quote

Kind = Literal["bool", "bash-bool", "number", "port", "choice", "url", "path", "text", "secret"]
Owner = Literal["spiffctl", "backend"]
WEEK = 7 * 86400.0
# What an operator who wrote these most likely meant: false. The API script reads them as false too.
FALSE_WORDS = ("false", "no", "n", "off", "0")


@dataclass(frozen=True)
class Variable:
    name: str
    owner: Owner
    kind: Kind
    default: str  # as the README shows it
    meaning: str
    low: float = 0
    high: float = 0
    whole: bool = False
    unit: str = "seconds"
    choices: tuple[str, ...] = ()
    case_sensitive: bool = True
    reader: str = ""  # bash-bool: the script that compares it

    @property
    def type(self) -> str:
        """The type and range, in the README's words."""
        if self.kind == "bool":
            return "boolean: `true` or `false`, any case"
        if self.kind == "bash-bool":
            return "boolean: `true` or `false`, lower case"
        if self.kind == "number":
            return f"{'whole number of ' if self.whole else ''}{self.unit}, {self.low:g} to {self.high:g}"
        if self.kind == "port":
            return "TCP port, 1 to 65535"
        if self.kind == "choice":
            return "one of " + ", ".join(f"`{c}`" for c in self.choices)
        return {"url": "URL", "path": "path", "text": "text", "secret": "text (secret)"}[self.kind]

    def judge(self, value: str) -> Problem | None:
        """The problem with ``value`` (set, not empty), or ``None``."""
        if self.kind == "bool":
            if value.lower() in ("true", "false"):
                return None
            return Problem(
                self.name,
                f"{quote(value)} is not true or false; the backend would keep the text, which counts as true",
                f"set {self.name}=true or {self.name}=false",
            )
        if self.kind == "bash-bool":
            return self._bash_bool(value)
        if self.kind == "number":
            wrong = numbers.complaint(value, low=self.low, high=self.high, unit=self.unit, whole=self.whole)
            return Problem(self.name, wrong, numbers.fix(float(self.default))) if wrong else None
        if self.kind == "port":
            if tcp_port(value) is not None:
                return None
            return Problem(self.name, f"{quote(value)} is not a TCP port", "set a number from 1 to 65535")
        if self.kind == "choice":
            given = value.strip() if self.case_sensitive else value.strip().lower()
            if given in self.choices:
                return None
            return Problem(self.name, f"{quote(value)} is not one of {', '.join(self.choices)}", self._choose())
        return None

    def _bash_bool(self, value: str) -> Problem | None:
        if value in ("true", "false"):
            return None
        reading = f'{quote(value)} is read as false by {self.reader}, which compares it with "true" exactly'
        fix = f"set {self.name}=true or {self.name}=false (lower case)"
        if value.strip().lower() in FALSE_WORDS:
            # Read as false, as the operator meant: say so, refuse nothing.
            return Problem(self.name, reading, fix, "warning")
        return Problem(self.name, reading, fix)

    def _choose(self) -> str:
        *first, last = self.choices
        listed = f"{', '.join(first)} or {last}" if first else last
        return f"set {self.name} to {listed}" + ("" if self.case_sensitive else " (any case)")


def _seconds(name: str, default: str, low: float, high: float, meaning: str) -> Variable:
    return Variable(name, "spiffctl", "number", default, meaning, low=low, high=high)


B = "SPIFFWORKFLOW_BACKEND_"
API_SCRIPT = "the API script (bin/boot_server_in_docker)"

ROLE = "SPIFFCTL_ROLE"
WAIT_TIMEOUT = "SPIFFCTL_WAIT_TIMEOUT"
MIGRATION_TIMEOUT = "SPIFFCTL_MIGRATION_TIMEOUT"
LOCK_TTL = "SPIFFCTL_LOCK_TTL"
RESTARTS = "SPIFFCTL_RESTARTS"
STOP_GRACE = "SPIFFCTL_STOP_GRACE"

VARIABLES: tuple[Variable, ...] = (
    Variable(
        ROLE,
        "spiffctl",
        "choice",
        "(required)",
        "`run`'s role (the `--role` flag wins)",
        choices=ROLE_CHOICES,
        case_sensitive=False,
    ),
    Variable(
        "SPIFFCTL_BACKEND_DIR",
        "spiffctl",
        "path",
        "`/app` when it holds the backend, else the current directory",
        "the backend root (the scripts' working directory); `--backend-dir` wins",
    ),
    _seconds(WAIT_TIMEOUT, "60", 0, WEEK, "how long `run` waits for the dependencies; 0 checks once"),
    # Waiting costs one small query per poll; giving up too early turns a long but healthy
    # migration into a restart loop. Thirty minutes covers data migrations on big databases.
    _seconds(MIGRATION_TIMEOUT, "1800", 1, WEEK, "how long a replica waits for the migration lock and for the schema"),
    Variable(
        "SPIFFCTL_LOCK",
        "spiffctl",
        "choice",
        "on",
        "`off` runs the Background without a lease: only with exactly one replica",
        choices=("on", "off"),
        case_sensitive=False,
    ),
    Variable(
        "SPIFFCTL_BACKGROUND_START",
        "spiffctl",
        "choice",
        "warm",
        "`warm`: every Background replica keeps the app loaded and starts the scheduler in it when it holds the "
        "lease; `script`: runs `bin/start_blocking_apscheduler` after taking the lease (about two minutes later)",
        choices=("warm", "script"),
        case_sensitive=False,
    ),
    Variable(
        "SPIFFCTL_LOG_FORMAT",
        "spiffctl",
        "choice",
        "auto",
        "`json`: every line spiffctl writes (and, in the all-in-one, every role's line) is one JSON object; "
        "`text`: `spiffctl: ...` and `api | ...`; `auto`: JSON when `SPIFFWORKFLOW_BACKEND_ENV` is set and not "
        "`local_development`",
        choices=("auto", "json", "text"),
        case_sensitive=False,
    ),
    Variable(
        "SPIFFCTL_LOCK_URL",
        "spiffctl",
        "url",
        "the broker when it is Redis, else the backend's database",
        "where the Background lease lives: Redis or a database",
    ),
    Variable("SPIFFCTL_LOCK_KEY", "spiffctl", "text", "derived from the database's identity", "the lease's name"),
    # 15 s: client-go's lease duration; at least 3 s: renewals every TTL/3 need a second of slack each.
    _seconds(LOCK_TTL, "15", 3, 600, "the Background lease's time to live"),
    Variable(
        "SPIFFCTL_RUN_DIR",
        "spiffctl",
        "path",
        "`$XDG_RUNTIME_DIR/spiffctl`, else `/run/spiffctl` for root, else `/tmp/spiffctl-<uid>`",
        "private runtime folder (state files, supervisord's configuration, pid file and socket): an absolute path "
        "to a folder of your own that nobody else can write, created 0700 when missing",
    ),
    Variable(
        RESTARTS,
        "spiffctl",
        "number",
        "0",
        "all-in-one: restarts allowed per role before the run fails",
        high=1000,
        whole=True,
        unit="restarts",
    ),
    Variable(
        STOP_GRACE,
        "spiffctl",
        "number",
        str(DEFAULT_STOP_GRACE),
        "all-in-one: seconds each role gets to stop before SIGKILL",
        low=1,
        high=3600,
        whole=True,
    ),
    Variable("SPIFFCTL_DEBUG", "spiffctl", "text", "(unset)", "`1`: the traceback of an internal error (exit 70)"),
    Variable(B + "DATABASE_URI", "backend", "url", "derived from the type", "the database"),
    Variable(
        B + "DATABASE_TYPE",
        "backend",
        "choice",
        "mysql",
        "the database kind when the URI is unset",
        choices=("mysql", "postgres", "sqlite"),
    ),
    Variable(B + "DATABASE_PASSWORD", "backend", "secret", "(empty)", "MySQL's root password for a derived URI"),
    Variable(B + "ENV", "backend", "text", "local_development", "names the derived database"),
    Variable(B + "CELERY_ENABLED", "backend", "bool", "false", "Celery workers process the instances"),
    Variable(B + "CELERY_BROKER_URL", "backend", "url", "redis://localhost", "Celery's broker"),
    Variable(B + "CELERY_RESULT_BACKEND", "backend", "url", "(unset)", "Celery's result backend (optional)"),
    Variable(B + "CELERY_SQS_URL", "backend", "url", "(unset)", "the queue, when the broker is `sqs://`"),
    Variable(B + "CELERY_RESULT_S3_BUCKET", "backend", "text", "(unset)", "the bucket, when results go to `s3://`"),
    Variable(B + "PROCESS_INSTANCE_METADATA_BACKFILL_ENABLED", "backend", "bool", "false", "needs Celery enabled"),
    Variable(B + "EVENT_NOTIFIER_PROCESS_MODEL", "backend", "text", "(unset)", "needs Celery enabled"),
    Variable(
        B + "RUN_BACKGROUND_SCHEDULER_IN_CREATE_APP",
        "backend",
        "bool",
        "false",
        "forced to false for every role: the Background is the only scheduler",
    ),
    Variable(
        B + "UPGRADE_DB",
        "backend",
        "bash-bool",
        "(unset: false)",
        "the api role brings the schema to head, once across replicas",
        reader=API_SCRIPT,
    ),
    Variable(
        B + "DOWNGRADE_DB",
        "backend",
        "bash-bool",
        "(unset: false)",
        "the API script downgrades then upgrades by itself",
        reader=API_SCRIPT,
    ),
    Variable("FLASK_SESSION_SECRET_KEY", "backend", "secret", "(required)", "the backend's session key"),
    Variable(B + "BPMN_SPEC_ABSOLUTE_DIR", "backend", "path", "(required)", "the process models (an absolute path)"),
    Variable(B + "PORT", "backend", "port", "7000", "the API's port"),
    Variable(B + "WSGI_PATH_PREFIX", "backend", "text", "(unset)", "the API's path prefix"),
    Variable(B + "CONNECTOR_PROXY_URL", "backend", "url", "(the backend's default)", "the connector proxy"),
)

BY_NAME: dict[str, Variable] = {v.name: v for v in VARIABLES}


def problems(env: Mapping[str, str]) -> Iterator[Problem]:
    """Every table variable whose value its reader would misread or refuse (empty counts as unset)."""
    for variable in VARIABLES:
        value = env.get(variable.name)
        if value:
            problem = variable.judge(value)
            if problem is not None:
                yield problem


def tcp_port(value: str) -> int | None:
    """``value`` as a TCP port (1-65535), or ``None``."""
    return int(value) if value.isascii() and value.isdigit() and 0 < int(value) < 65536 else None


def truth(name: str, value: str | None) -> bool:
    """A backend boolean as its reader takes it (a value refused by :func:`problems` never gets here)."""
    if not value:
        return False
    return value == "true" if BY_NAME[name].kind == "bash-bool" else value.lower() == "true"


def number(name: str, raw: str | None, *, flag: str = "", exit_code: int = CONFIG) -> float:
    """A numeric row's value; ``flag`` names the command-line option when the value came from it."""
    v = BY_NAME[name]
    return numbers.parse(
        raw,
        name=flag or name,
        low=v.low,
        high=v.high,
        default=float(v.default),
        unit=v.unit,
        whole=v.whole,
        exit_code=exit_code,
    )


def markdown() -> str:
    """The README's variables table."""
    lines = ["| variable | read by | type and range | default | meaning |", "|---|---|---|---|---|"]
    for v in VARIABLES:
        lines.append(f"| `{v.name}` | {v.owner} | {v.type} | {v.default} | {v.meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
