"""The two Linux process attributes spiffctl sets with ``prctl(2)``; no-ops elsewhere."""

from __future__ import annotations

import signal

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> None:
    import ctypes  # here, not at the top: `run` imports this module and rarely needs it

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux


def become_subreaper() -> None:
    """Orphans of our descendants become our children (so we can reap and account for them)."""
    _prctl(PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent() -> None:
    """In a child between fork and exec: SIGKILL it when the parent dies, however the parent dies."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
