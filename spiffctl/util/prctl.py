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


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """``sig`` (default SIGKILL) when the parent dies, however it dies; kept across exec, not fork.

    Careful: "the parent" is the *thread* that forked us; a parent that forks from a thread which
    later exits signals us early."""
    _prctl(PR_SET_PDEATHSIG, sig)
