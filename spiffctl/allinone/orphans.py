"""The all-in-one's roles die with supervisord, however supervisord dies (``kill -9``, the OOM killer).

In a container the roles die with PID 1 anyway; elsewhere they would be adopted by init and keep
the lease and the port, and the next start would fail. ``PR_SET_PDEATHSIG`` on each program is not
enough: it reaches the program's own process only (the role's script may have forked ``uv`` and
Python below it), and it cannot be handled after the script's exec. So one small watcher process,
started by the listener before any program, learns each program's process group (every program
leads its own: supervisord's ``setpgrp``) over a pipe from supervisord and notices supervisord's
death as the end of that pipe, which no signal and no thread can miss. Then it stops every group
it knows as supervisord would: SIGTERM, SIGKILL after the grace. On a normal end supervisord says
``done`` first and the watcher just exits.

The watcher is this file run by ``python -I -S`` (standard library only, a few MB), in
supervisord's process group; it ignores the terminal's and the engine's signals, which are
supervisord's to handle: it ends with the pipe.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

DONE = b"done"
POLL = 0.05


class Guard:
    """supervisord's end of the pipe: tell the watcher about each program, then that all is done."""

    def __init__(self, stop_grace: float) -> None:
        read, self.fd = os.pipe()
        os.set_inheritable(self.fd, False)
        self.process = subprocess.Popen(
            [sys.executable or "python3", "-I", "-S", __file__, str(read), str(stop_grace)],
            pass_fds=(read,),
            stdin=subprocess.DEVNULL,
        )
        os.close(read)

    def adopt(self, pgid: int) -> None:
        self._send(b"+%d" % pgid)

    def drop(self, pgid: int) -> None:
        self._send(b"-%d" % pgid)

    def done(self, wait: float = 1.0) -> None:
        if self.fd < 0:
            return
        self._send(DONE)
        os.close(self.fd)
        self.fd = -1
        try:
            self.process.wait(wait)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _send(self, word: bytes) -> None:
        if self.fd < 0:
            return
        try:
            os.write(self.fd, word + b"\n")
        except OSError:
            pass  # the watcher is gone: the roles lose this safety net, supervision goes on


def listen(fd: int) -> set[int] | None:
    """The groups alive when supervisord died, or ``None`` when it said it was done."""
    groups: set[int] = set()
    with os.fdopen(fd, "rb") as pipe:
        for line in pipe:
            word = line.strip()
            if word == DONE:
                return None
            if word[:1] in (b"+", b"-") and word[1:].isdigit():
                (groups.add if word[:1] == b"+" else groups.discard)(int(word[1:]))
    return groups


def alive(pgid: int) -> bool:
    # Like lease.guard's check, not imported: this file runs with the standard library only.
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_all(groups: set[int], sig: int) -> None:
    for pgid in groups:
        for send in (os.killpg, os.kill):  # os.kill: a program killed before its setpgrp
            try:
                send(pgid, sig)
            except OSError:
                pass


def stop(groups: set[int], grace: float) -> None:
    signal_all(groups, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(alive(g) for g in groups) and time.monotonic() < deadline:
        time.sleep(POLL)
    signal_all({g for g in groups if alive(g)}, signal.SIGKILL)


def main(argv: list[str]) -> int:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)
    groups = listen(int(argv[1]))
    if groups:
        stop(groups, float(argv[2]))
        try:
            os.write(2, b"spiffctl: supervisord died; its roles were stopped\n")
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
