"""The Background runner's resident phase in a lean interpreter: ``python -m spiffctl.lease.resident``.

``spiffctl run --role background`` with the lease on checks the configuration and waits for its
dependencies and the schema, then execs this module in its place (same pid, so supervisord, the
orchestrator and the state file see one process). What stays resident for the script's whole life
is then the guard (:mod:`spiffctl.lease.guard`), the lease store and its one driver: not typer,
the probes and drivers of the waits, the schema reader, nor their connections and threads.

It reads the same environment again, so it builds the same settings, lease and script; whatever
the first process said about them (warnings, overridden variables) is not said twice.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn

from spiffctl import log
from spiffctl.commands import exits
from spiffctl.config.settings import Settings, load
from spiffctl.launch import child_env, say, script_path
from spiffctl.lease import guard
from spiffctl.lease.start import start_mode
from spiffctl.roles import Role, get_role
from spiffctl.util.errors import SpiffctlError


def command(settings: Settings, role: Role) -> list[str]:
    return [sys.executable, "-m", __name__, role.name, str(settings.backend_dir)]


def hand_over(settings: Settings, role: Role) -> NoReturn:
    """Replace this process (the checks and waits done) by the lean resident runner."""
    sys.stdout.flush()
    sys.stderr.flush()
    argv = command(settings, role)
    os.execv(argv[0], argv)


def _silent(message: str) -> None:
    del message  # said once already, by the process that exec'd this one


def serve(role_name: str, backend_dir: Path) -> NoReturn:
    log.set_role(role_name)
    role = get_role(role_name)
    assert role is not None and role.singleton
    settings = load(backend_dir=backend_dir)
    lease = guard.lease_for_role(settings, role)
    assert lease.enabled  # the same environment the first process found the lease on in
    start = start_mode(settings.env, settings.backend_dir)
    env = child_env(settings, role, say=_silent)
    guard.run_singleton(settings, lease, role, script_path(settings, role), env, say=say, start=start)
    raise AssertionError("the guard returned with the lease on")


def main(argv: list[str]) -> NoReturn:
    """``ROLE BACKEND_DIR``; leaves as ``spiffctl run`` would: one line and an exit code."""
    try:
        serve(argv[0], Path(argv[1]))
    except SpiffctlError as e:
        code = exits.refused(e)
    except KeyboardInterrupt:
        code = 130
    except Exception as e:
        code = exits.crashed(e)
    sys.stdout.flush()
    sys.exit(code)


if __name__ == "__main__":
    main(sys.argv[1:])
