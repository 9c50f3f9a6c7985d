"""PLACEHOLDER until the ``lease`` branch lands: drop this file (take the lease branch's guard.py).

It only covers ``SPIFFCTL_LOCK=off`` so the all-in-one supervisor can be tested on its own; with
the lock on it refuses clearly instead of running a Background without its lease.
"""

from __future__ import annotations

from pathlib import Path

from spiffctl.errors import CONFIG, SpiffctlError
from spiffctl.lockconfig import LOCK, lock_config
from spiffctl.roles import Role
from spiffctl.settings import Settings
from spiffctl.wait import Say


def run_singleton(settings: Settings, role: Role, script: Path, env: dict[str, str], *, say: Say) -> None:
    if not lock_config(settings).enabled:
        say(f"warning: {LOCK}=off: the {role.name} role runs without a lease; run exactly one replica")
        return  # the caller execs the script
    raise SpiffctlError(
        f"{role.name}: this spiffctl build has no Background lease yet (spiffctl.guard placeholder); "
        f"set {LOCK}=off to run it without one",
        CONFIG,
    )
