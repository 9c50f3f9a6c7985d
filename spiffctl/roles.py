"""THE table: which bin script each role runs and what it needs before it may start.

``run``, ``doctor``, ``healthcheck`` and the all-in-one supervisor read this table. Adding a
dependency to a role is one edit here (its probe kind must exist in :mod:`spiffctl.probes`).
Adding a role is one entry here when it reuses an existing :class:`Health` rule; a new way of
telling health also needs its function in :mod:`spiffctl.health`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from spiffctl.util.errors import USAGE, SpiffctlError
from spiffctl.util.redact import quote

SCHEDULER_IN_APP = "SPIFFWORKFLOW_BACKEND_RUN_BACKGROUND_SCHEDULER_IN_CREATE_APP"
CELERY_ENABLED = "SPIFFWORKFLOW_BACKEND_CELERY_ENABLED"
DIRECT_EXEC = "SPIFFWORKFLOW_BACKEND_CELERY_WORKER_DIRECT_EXEC"


class Need(str, Enum):
    """A dependency kind a role must reach before its script may start."""

    DATABASE = "database"
    SCHEMA = "schema at head"  # alembic_version equals this image's migration head
    BROKER = "broker"
    RESULT_BACKEND = "result backend"  # only when SPIFFWORKFLOW_BACKEND_CELERY_RESULT_BACKEND is set


class Health(str, Enum):
    """How ``spiffctl healthcheck`` decides a container of this role is healthy."""

    HTTP_STATUS = "GET /v1.0/status answers ok"
    LEASE_STATE = "runner state file is fresh"
    WORKER = "worker process alive and answers Celery's ping"


@dataclass(frozen=True)
class Role:
    name: str
    script: str  # relative to the backend root, which is also the child's cwd
    needs: tuple[Need, ...]
    health: Health
    requires_celery: bool = False
    # With SPIFFWORKFLOW_BACKEND_UPGRADE_DB=true this role brings the schema to head (once across
    # replicas, under a lock in the database) instead of waiting for it.
    migrates: bool = False
    # In the all-in-one, the script starts only once these roles answer their health check: the
    # API boots first, without the others' app starts competing for the CPU.
    after: tuple[str, ...] = ()
    # At most one process of this role may run across all replicas: guarded by the lease (in Redis or the database).
    singleton: bool = False
    # Forced into the child's environment. The scheduler-in-app switch must be off in every
    # split role: otherwise each gunicorn worker (and the Background itself) starts a scheduler.
    env: dict[str, str] = field(default_factory=dict)
    # Defaults given only when the operator left the variable unset and the file (relative to the
    # backend root) exists: {variable: (value, file)}.
    env_if_file: dict[str, tuple[str, str]] = field(default_factory=dict)


_NO_SCHEDULER_IN_APP = {SCHEDULER_IN_APP: "false"}

ROLES: dict[str, Role] = {
    "api": Role(
        name="api",
        script="bin/boot_server_in_docker",
        needs=(Need.DATABASE, Need.SCHEMA),
        migrates=True,
        health=Health.HTTP_STATUS,
        env=_NO_SCHEDULER_IN_APP,
    ),
    "background": Role(
        name="background",
        script="bin/start_blocking_apscheduler",
        needs=(Need.DATABASE, Need.SCHEMA),
        after=("api",),
        health=Health.LEASE_STATE,
        singleton=True,
        env=_NO_SCHEDULER_IN_APP,
    ),
    "worker": Role(
        name="worker",
        script="bin/start_celery_worker",
        needs=(Need.DATABASE, Need.BROKER, Need.RESULT_BACKEND, Need.SCHEMA),
        after=("api",),
        health=Health.WORKER,
        requires_celery=True,
        env=_NO_SCHEDULER_IN_APP,
        # The script then execs the venv's celery instead of `uv run celery`: one process less,
        # no uv start-up, signals straight to Celery (issue 17).
        env_if_file={DIRECT_EXEC: ("true", ".venv/bin/celery")},
    ),
}

# Seconds a role gets to stop after SIGTERM before its process group is killed: under docker's
# and Kubernetes' 10 s default, so spiffctl stops the backend cleanly before the engine kills it.
STOP_GRACE = 8

ALL = "all"
# Set only by the all-in-one, for each role that starts after others (``Role.after``): the roles to
# wait for. Split replicas never wait for each other; their schema wait is what orders them.
START_AFTER = "SPIFFCTL_START_AFTER"
ROLE_NAMES = tuple(ROLES)
ROLE_CHOICES = (*ROLE_NAMES, ALL)

# Defaults the backend image sets globally; outside it, `uv run` without UV_NO_SYNC tries to
# re-sync the project (and fails offline), so the child gets it unless the operator chose.
CHILD_ENV_DEFAULTS = {"UV_NO_SYNC": "true"}


def overrides(env: Mapping[str, str], role: Role) -> list[tuple[str, str, str]]:
    """(variable, operator's value, forced value) for each forced value that contradicts the operator."""
    return [
        (name, env[name], value) for name, value in role.env.items() if env.get(name) and env[name].lower() != value
    ]


def get_role(name: str, *, allow_all: bool = False) -> Role | None:
    """The role called ``name``; ``None`` for ``all`` when allowed. Unknown names are a config error."""
    choices = ROLE_CHOICES if allow_all else ROLE_NAMES
    if name not in choices:
        raise SpiffctlError(
            f"--role / SPIFFCTL_ROLE: unknown role {quote(name)}; use one of {', '.join(choices)}", USAGE
        )
    return None if name == ALL else ROLES[name]


def roles_for(name: str, *, celery_enabled: bool) -> list[Role]:
    """The roles that ``name`` stands for: one role, or every role that runs in this install."""
    role = get_role(name, allow_all=True)
    if role is not None:
        return [role]
    return [r for r in ROLES.values() if celery_enabled or not r.requires_celery]
