"""Who listens on a TCP port: the socket's inode in ``/proc/net/tcp{,6}``, matched to processes' fds.

``healthcheck --role api`` trusts an answer on the port only when the listening socket belongs to
the API's own process tree: another program on port 7000 answers ``/v1.0/status`` as well as
the backend would, while the API's script died with "Address already in use".
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from spiffctl.util import procfs

LISTEN = "0A"  # the kernel's TCP_LISTEN in /proc/net/tcp's ``st`` column


def listening(port: int) -> set[int]:
    """Inodes of the sockets listening on ``port`` (IPv4 and IPv6, any address)."""
    inodes: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(int(fields[9]))
    return inodes


def tree(root: int) -> set[int]:
    """``root`` and every process descended from it."""
    parents: dict[int, int] = {}
    for pid in _pids():
        found = procfs.stat(pid)
        if found is not None:
            parents[pid] = found.ppid
    members = {root}
    grew = True
    while grew:
        more = {pid for pid, ppid in parents.items() if ppid in members} - members
        members |= more
        grew = bool(more)
    return members


def holders(inodes: set[int], pids: Iterable[int]) -> list[int]:
    """Which of ``pids`` hold one of the sockets ``inodes`` (processes we may not read are skipped)."""
    wanted = {f"socket:[{inode}]" for inode in inodes}
    found = []
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                    found.append(pid)
                    break
            except OSError:
                continue
    return found


def name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as f:
            return f.read().strip() or "?"
    except OSError:
        return "?"


def stranger(port: int, root: int) -> str | None:
    """``None`` when ``root``'s tree holds the listening socket on ``port`` (or nobody listens:
    the HTTP probe says so); else who does, as the operator should read it."""
    inodes = listening(port)
    if not inodes or holders(inodes, tree(root)):
        return None
    others = holders(inodes, _pids())
    who = f"pid {others[0]}, {name(others[0])}" if others else "a process spiffctl cannot see"
    return f"port {port} is answered by another process ({who}), not by the api role's (pid {root})"


def _pids() -> list[int]:
    try:
        return [int(e) for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return []
