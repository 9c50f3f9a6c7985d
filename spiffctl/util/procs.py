"""Process groups and exit codes, the way a shell and a process supervisor see them.

Standard library only: the lease's watchdog (:mod:`spiffctl.lease.watchdog`) imports it, and
the watchdog must stay a few MB that loads nothing of the rest of spiffctl.

* A role's script leads its own process group (``uv run`` and the python below it are in it),
  so stopping it means signalling the group, and it is gone only when no member is left.
* An exit code follows the shell's convention: the process's own code, or 128+N for a death by
  signal N (143 for SIGTERM, 137 for SIGKILL).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

GROUP_GONE_WAIT = 2.0  # after SIGKILL, how long to wait for the group to be reaped
TICK = 0.02


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to the group (0: only look); False when no process of it is left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # a member changed uid; it still exists
    return True


def wait_group_gone(
    pgid: int,
    limit: float,
    *,
    reap: Callable[[], None] = lambda: None,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Wait up to ``limit`` seconds for the group to have no member; True when it has none.

    ``reap`` collects our dead children meanwhile: a zombie still counts as a member.
    """
    end = clock() + limit
    while True:
        reap()
        if not signal_group(pgid, 0):
            return True
        if clock() >= end:
            return False
        time.sleep(TICK)


def stop_group(
    pgid: int,
    grace: float,
    *,
    reap: Callable[[], None] = lambda: None,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """SIGTERM to the group, SIGKILL to what is left after ``grace`` seconds; True once it is gone."""
    if not signal_group(pgid, signal.SIGTERM):
        return True
    if wait_group_gone(pgid, grace, reap=reap, clock=clock) or not signal_group(pgid, signal.SIGKILL):
        return True
    return wait_group_gone(pgid, GROUP_GONE_WAIT, reap=reap, clock=clock)


def died_of(sig: int) -> int:
    """The exit code a shell reports for a death by signal ``sig``."""
    return 128 + sig


def shell_code(returncode: int) -> int:
    """A ``subprocess`` return code (-N for a death by signal N) as a shell reports it."""
    return died_of(-returncode) if returncode < 0 else returncode


def exit_code(status: int) -> int:
    """A raw wait status as a shell reports it; ValueError for a stop or a continue (not an end)."""
    return shell_code(os.waitstatus_to_exitcode(status))


def killed_by(status: int) -> int | None:
    """The signal a raw wait status says the process died of, or None."""
    return os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
