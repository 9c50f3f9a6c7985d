"""The one reader of ``/proc/<pid>/stat``: liveness, start time, parent, and when we were exec'd.

Fields after the command name are split off the *last* ``)``: the name itself may hold spaces
and parentheses. Where there is no ``/proc`` (not Linux) every answer is "unknown".
"""

from __future__ import annotations

import os
import time
from typing import NamedTuple

# A process that is gone in all but name: it cannot be signalled into doing anything.
DEAD_STATES = ("Z", "X")


class Stat(NamedTuple):  # not a dataclass: PID 1 (supervisord) reads /proc, and dataclasses costs it ~1 MB
    state: str  # R, S, D, T, Z, ...
    ppid: int
    start: int  # clock ticks after boot: with the pid, it identifies one process for good

    @property
    def dead(self) -> bool:
        return self.state in DEAD_STATES


def stat(pid: int | str = "self") -> Stat | None:
    """``pid``'s status line, or ``None`` when it does not exist (or cannot be read)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().decode("ascii", "replace").rsplit(")", 1)[1].split()
        return Stat(state=fields[0], ppid=int(fields[1]), start=int(fields[19]))
    except (OSError, IndexError, ValueError):
        return None


def start_time(pid: int) -> int | None:
    """When ``pid`` started (ticks after boot); ``None`` when it is gone or a zombie."""
    found = stat(pid)
    return None if found is None or found.dead else found.start


def alive(pid: object, start: object = None) -> bool:
    """Alive, not a zombie, and (when ``start`` is known) the very process that was recorded."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    now = start_time(pid)
    return now is not None and (start is None or start == now)


def children(parent: int | None = None) -> list[int]:
    """The direct children of ``parent`` (default: this process)."""
    parent = os.getpid() if parent is None else parent
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    found: list[int] = []
    for entry in entries:
        if entry.isdigit() and (s := stat(entry)) is not None and s.ppid == parent:
            found.append(int(entry))
    return found


def exec_time() -> float:
    """When this process was exec'd, on the monotonic clock; now when that cannot be known.

    Bounds promised to an operator ("doctor answers within the timeout") include interpreter
    start-up and imports, a few hundred ms, so they are measured from exec, not from main().
    """
    now = time.monotonic()
    me = stat()
    if me is None:
        return now
    try:
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - me.start / os.sysconf("SC_CLK_TCK")
    except (AttributeError, OSError, ValueError):
        return now
    return now - age if 0 <= age < 60 else now
