"""Processes as /proc shows them: alive or not, and who is in a process group or session."""

from __future__ import annotations

import os
from collections.abc import Iterator


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def proc_stats() -> Iterator[tuple[int, list[str]]]:
    """(pid, stat fields after the command name) for every live (non-zombie) process.

    Fields: [0] state, [1] ppid, [2] pgrp, [3] session.
    """
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in ("Z", "X"):
            yield int(entry), fields


def group_members(pgid: int) -> list[int]:
    """Pids of live (non-zombie) processes whose process group is ``pgid``."""
    return [pid for pid, fields in proc_stats() if int(fields[2]) == pgid]


def session_members(sid: int) -> list[int]:
    """Pids of live (non-zombie) processes in session ``sid``."""
    return [pid for pid, fields in proc_stats() if int(fields[3]) == sid]


def children_map() -> dict[int, list[int]]:
    """ppid -> pids of its live children."""
    kids: dict[int, list[int]] = {}
    for pid, fields in proc_stats():
        kids.setdefault(int(fields[1]), []).append(pid)
    return kids
