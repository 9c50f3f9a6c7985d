"""``spiffctl run --role all``: every role of this install on one box, under supervisord.

What happens, in order:

1. Configuration is checked for every role at once (errors -> 78, missing scripts -> 127/126),
   as are ``SPIFFCTL_RESTARTS`` and ``SPIFFCTL_STOP_GRACE``.
2. The dependencies are waited for once: the union of the roles' needs from the role table.
3. ``conf/supervisord.conf.tmpl`` is rendered into the private run dir (0700; file 0600). The
   file holds paths and numbers only: programs inherit supervisord's environment, so no secret
   is ever written to disk.
4. spiffctl execs ``python -m spiffctl.allinone.pid1 <conf>``: the same PID (PID 1 in a container) becomes
   supervisord, run in-process with the :mod:`spiffctl.allinone.listener` plugin, and finally exits with
   the code the plugin recorded. See :mod:`spiffctl.allinone.pid1` for why this is not a plain
   ``exec supervisord``.

Each program is ``<python> -m spiffctl run --role ROLE`` (with ``--no-wait`` when the all-in-one
was given it), so the single-role behaviour
(environment fixes, the schema steps, the Background lease) is the same in both modes; its
dependency check passes at once (they were all checked above). Roles the role table starts
``after`` others get :data:`spiffctl.roles.START_AFTER`: the API boots first.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from typing import NoReturn

from spiffctl import state
from spiffctl.allinone import handoff
from spiffctl.config import variables
from spiffctl.config.settings import Endpoint, Settings, role_problems
from spiffctl.launch import script_path
from spiffctl.lease.config import LOCK, LOCK_OFF_EXPLAINED, LOCK_URL, lease_config
from spiffctl.lease.start import start_mode
from spiffctl.roles import START_AFTER, Role, roles_for
from spiffctl.state import SOCKET_NAME
from spiffctl.util.errors import ConfigError, ConfigProblems
from spiffctl.util.redact import quote
from spiffctl.wait import Say, wait_for

RESTARTS = variables.RESTARTS
STOP_GRACE = variables.STOP_GRACE
PROMETHEUS_DIR = "PROMETHEUS_MULTIPROC_DIR"

CONF_NAME = "supervisord.conf"
LOCK_NAME = "allinone.lock"
TEMPLATE = "supervisord.conf.tmpl"
# AF_UNIX paths are limited to 108 bytes on Linux (including the NUL).
MAX_SOCKET_PATH = 107
_PROGRAM_START = ";--- program (repeated for each role) ---"
_PROGRAM_END = ";--- end program ---"


@dataclass(frozen=True)
class Program:
    role: Role
    command: list[str]
    env: dict[str, str]  # non-secret per-program variables only


@dataclass(frozen=True)
class Plan:
    run_dir: Path
    backend_dir: Path
    restarts: int
    stop_grace: int
    programs: list[Program]
    umask: int = 0o022  # the roles' umask: the operator's, not supervisord's private 077

    @property
    def socket(self) -> Path:
        return self.run_dir / SOCKET_NAME

    @property
    def conf(self) -> Path:
        return self.run_dir / CONF_NAME


def run_all(settings: Settings, *, wait_timeout: float, wait: bool, say: Say) -> NoReturn:
    roles = roles_for("all", celery_enabled=settings.celery_enabled)
    check_config(settings, roles, say=say)
    plan = make_plan(settings, roles, os.environ, say=say, wait=wait)
    if wait:
        wait_for(needed_endpoints(settings, roles), wait_timeout, say=say, redactor=settings.redactor)
    refuse_second_instance(plan)
    write_config(plan)
    state.remember_role("all")
    names = ", ".join(p.role.name for p in plan.programs)
    say(
        f"starting {names} under supervisord (restarts {plan.restarts}, stop grace {plan.stop_grace} s); "
        "`spiffctl status` lists them"
    )
    exec_pid1(plan, settings.redactor.secrets)


def check_config(settings: Settings, roles: list[Role], *, say: Say) -> None:
    """Every role's configuration errors at once (78); every script present (127/126); warnings once."""
    errors = [str(p) for p in settings.errors]
    for role in roles:
        errors += [str(p) for p in role_problems(settings, role) if str(p) not in errors]
    if errors:
        raise ConfigProblems(errors)
    for role in roles:
        script_path(settings, role)
    for problem in settings.warnings:
        say(f"warning: {problem}")


def needed_endpoints(settings: Settings, roles: list[Role]) -> list[Endpoint]:
    """The union of the roles' needs, in table order, each endpoint once."""
    seen: list[Endpoint] = []
    for role in roles:
        for need in role.needs:
            endpoint = settings.endpoint(need)
            if endpoint is not None and endpoint not in seen:
                seen.append(endpoint)
    return seen


def make_plan(
    settings: Settings, roles: list[Role], environ: Mapping[str, str], *, say: Say, wait: bool = True
) -> Plan:
    restarts = int(variables.number(RESTARTS, environ.get(RESTARTS)))
    grace = int(variables.number(STOP_GRACE, environ.get(STOP_GRACE)))
    run_dir = state.run_dir(environ)
    if len(str(run_dir / SOCKET_NAME).encode()) > MAX_SOCKET_PATH:
        raise ConfigError(f"{state.RUN_DIR_VAR}: {run_dir} is too long for a unix socket path; use a shorter folder")
    lease_off = background_without_lease(settings, roles, say=say)
    if any(r.singleton for r in roles):
        start_mode(settings.env, settings.backend_dir)  # a bad SPIFFCTL_BACKGROUND_START: 78 before any role starts
    prometheus = settings.env.get(PROMETHEUS_DIR) or ""
    programs = []
    for role in roles:
        env = {
            "SPIFFCTL_ROLE": role.name,
            # Each role's own state (role file, lease state) in its own folder: roles would
            # otherwise overwrite each other's files in the shared run dir.
            state.RUN_DIR_VAR: str(state.role_run_dir(run_dir, role.name)),
        }
        if prometheus:
            # The API script wipes this folder at start: roles must not share it.
            env[PROMETHEUS_DIR] = str(Path(prometheus) / role.name)
        if lease_off and role.singleton:
            env[LOCK] = "off"
            env[LOCK_OFF_EXPLAINED] = "1"
        after = [name for name in role.after if any(r.name == name for r in roles)]
        if after:
            env[START_AFTER] = ",".join(after)
        programs.append(Program(role, program_command(role, wait=wait), env))
    plan = Plan(run_dir, settings.backend_dir, restarts, grace, programs, current_umask())
    for program in programs:
        for name, value in program.env.items():
            if any(c in value for c in '"\n\r'):
                raise ConfigError(
                    f"{name}: {quote(value)} contains a quote or newline, which supervisord cannot pass on"
                )
    return plan


def background_without_lease(settings: Settings, roles: list[Role], *, say: Say) -> bool:
    """True when the Background must run without a lease: no Redis and no usable database for it.

    Only when the operator said nothing about the lock: an explicit ``SPIFFCTL_LOCK=on`` without
    Redis is refused here (it cannot work), an explicit ``off`` reaches the role as it is.
    """
    if not any(r.singleton for r in roles):
        return False
    config = lease_config(settings)  # raises ConfigError (78) for unusable lock settings
    if config.url is not None or not config.enabled:
        return False
    if settings.env.get(LOCK):
        raise ConfigError(
            f"{LOCK}=on asks for the Background lease but there is no Redis and no usable database for it; "
            f"set {LOCK_URL}, or unset {LOCK} to run the Background without a lease on this box"
        )
    say(
        f"warning: no Redis ({LOCK_URL} or a redis:// broker) and no usable database, so the background role runs "
        "without a lease on this box; run exactly one all-in-one container per database"
    )
    return True


def current_umask() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def python_executable() -> str:
    # sys.executable is empty when Python cannot tell; the venv's python is on PATH in the image.
    return sys.executable or "python3"


def program_command(role: Role, *, wait: bool = True) -> list[str]:
    """``run --no-wait`` passes on: no role then waits for anything (schema, API) either."""
    command = [python_executable(), "-m", "spiffctl", "run", "--role", role.name]
    return command if wait else [*command, "--no-wait"]


def template_text() -> str:
    return resources.files("spiffctl").joinpath("conf").joinpath(TEMPLATE).read_text(encoding="utf-8")


def _value(text: str) -> str:
    """A value for supervisord's config: its parser expands percent-style variables."""
    if "\n" in text or "\r" in text:
        raise ConfigError(f"{quote(text)} contains a newline, which a supervisord configuration cannot hold")
    return text.replace("%", "%%")


def render(plan: Plan, template: str | None = None) -> str:
    text = template_text() if template is None else template
    head, rest = text.split(_PROGRAM_START, 1)
    block, tail = rest.split(_PROGRAM_END, 1)
    common = {
        "run_dir": _value(str(plan.run_dir)),
        "socket": _value(str(plan.socket)),
        "restarts": str(plan.restarts),
        "stop_grace": str(plan.stop_grace),
        "programs": ",".join(p.role.name for p in plan.programs),
    }
    out = [Template(head).substitute(common)]
    for program in plan.programs:
        values = dict(common)
        values.update(
            role=program.role.name,
            command=_value(shlex.join(program.command)),
            directory=_value(str(plan.backend_dir)),
            environment=",".join(f'{k}="{_value(v)}"' for k, v in program.env.items()),
            autorestart="true" if plan.restarts else "false",
            umask=f"{plan.umask:03o}",
        )
        out.append(Template(block).substitute(values))
    out.append(tail)
    return "".join(out)


def write_config(plan: Plan) -> None:
    for folder in (plan.run_dir / "roles", *(Path(p.env[state.RUN_DIR_VAR]) for p in plan.programs)):
        state.run_dir({state.RUN_DIR_VAR: str(folder)})
    for program in plan.programs:
        if PROMETHEUS_DIR in program.env:
            try:
                Path(program.env[PROMETHEUS_DIR]).mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ConfigError(
                    f"{PROMETHEUS_DIR}: cannot create {program.env[PROMETHEUS_DIR]} ({e.strerror}); "
                    "point it at a writable folder"
                ) from None
    state.write_text(plan.conf, render(plan))


def refuse_second_instance(plan: Plan) -> None:
    """One all-in-one per run folder: it holds ``LOCK_NAME`` until its process (exec'd into pid1) ends.

    A lock, not a look at the socket: two started at the same moment both find no socket yet, and
    the second supervisord would fail with its own text. The descriptor is inherited across the
    exec on purpose; supervisord closes it in every program it starts."""
    path = plan.run_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as e:
        raise ConfigError(f"{state.RUN_DIR_VAR}: cannot open {path} ({e.strerror}); remove it") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.set_inheritable(fd, True)
    except OSError:
        os.close(fd)
        raise ConfigError(
            f"{state.RUN_DIR_VAR}: an all-in-one spiffctl already runs with {plan.run_dir} (see `spiffctl status`); "
            "stop it or use another folder"
        ) from None


def exec_pid1(plan: Plan, secrets: Iterable[str] = ()) -> NoReturn:
    python = python_executable()
    handoff.give(secrets, os.environ)  # the log prefixer scrubs what this process resolved
    sys.stdout.flush()
    sys.stderr.flush()
    # os.environ, not settings.env: each role re-reads *_FILE secrets itself, exactly as alone.
    os.execv(python, [python, "-m", "spiffctl.allinone.pid1", str(plan.conf)])
