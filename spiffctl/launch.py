"""Starting a role's bin script: refuse bad configuration, find the script, build its environment, exec.

Shared by ``run --role X`` (:mod:`spiffctl.commands.run`) and the all-in-one
(:mod:`spiffctl.allinone.supervisor`), which must treat a role exactly alike.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

from spiffctl import log
from spiffctl.config.settings import Settings, role_problems
from spiffctl.roles import CHILD_ENV_DEFAULTS, SCHEDULER_IN_APP, Role, overrides
from spiffctl.util.errors import NOT_EXECUTABLE, NOT_FOUND, ConfigProblems, SpiffctlError, cannot_execute
from spiffctl.wait import Say


def say(message: str) -> None:
    log.say(message)


def prepare(settings: Settings, role: Role, *, say: Say = say) -> None:
    """Refuse to start on any configuration error; print each warning once."""
    errors = [str(p) for p in [*settings.errors, *role_problems(settings, role)]]
    if errors:
        raise ConfigProblems(errors)
    for problem in settings.warnings:
        say(f"warning: {problem}")


def script_path(settings: Settings, role: Role) -> Path:
    script = settings.backend_dir / role.script
    if not script.is_file():
        raise SpiffctlError(
            f"{role.name}: bin script {script} not found; point --backend-dir (SPIFFCTL_BACKEND_DIR) "
            "at the backend root",
            NOT_FOUND,
        )
    if not os.access(script, os.X_OK):
        raise SpiffctlError(f"{role.name}: bin script {script} is not executable; chmod +x it", NOT_EXECUTABLE)
    return script


def child_env(settings: Settings, role: Role, *, say: Say = say) -> dict[str, str]:
    """The resolved environment plus the role's forced values; says when it overrides the operator."""
    env = dict(settings.env)
    for name, value in CHILD_ENV_DEFAULTS.items():
        env.setdefault(name, value)
    for name, old, new in overrides(env, role):
        say(
            f"{name}={old} overridden to {new} for the {role.name} role: in a split deployment the Background "
            "role is the only scheduler"
            if name == SCHEDULER_IN_APP
            else f"{name}={old} overridden to {new}"
        )
    env.update(role.env)
    for name, (value, file) in role.env_if_file.items():
        if not env.get(name) and (settings.backend_dir / file).exists():
            say(f"{name} is unset and {file} exists: set to {value} for the {role.name} role")
            env[name] = value
    env["SPIFFCTL_ROLE"] = role.name
    return env


def exec_script(script: Path, cwd: Path, env: Mapping[str, str], args: tuple[str, ...] = ()) -> NoReturn:
    os.chdir(cwd)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(script, [str(script), *args], env)
    except OSError as e:
        code = NOT_FOUND if e.errno == errno.ENOENT else NOT_EXECUTABLE
        raise SpiffctlError(cannot_execute(script, e.strerror or str(e)), code) from None
