"""The fence: a tiny process that is the Background script's parent and only enforces deadlines.

It exists because the renewer (:mod:`spiffctl.guard`) can be frozen (SIGSTOP, a stuck Redis
call, a paused VM thread) or killed; the script must still die before the lease can expire.
This process knows nothing about Redis. It starts the script in a new session (so the script,
``uv run`` and the python it spawns form one process group it can kill as a whole), then obeys
lines read from the control pipe:

* ``fence <t>``  the script must be dead by time ``t`` on :func:`clock` (``CLOCK_BOOTTIME``, shared
  by all processes on the host): SIGTERM to the group at ``t - term_grace``, SIGKILL at ``t``.
  Each successful renewal sends a later ``t``.
* ``stop <g>``   stop now: SIGTERM to the group, SIGKILL after ``g`` seconds (never after ``t``).
* end of file    the renewer died: behave as ``stop <term_grace>``.

and reports on the report pipe: ``started <pid>`` (or ``exited 0 fenced`` without starting it
when the deadline is already too close), then ``exited <code> <how>`` where ``code``
is the script's exit code (128+N for signal N) and ``how`` is ``own`` (it exited by itself),
``stopped`` (after a stop request or end of file) or ``fenced`` (the deadline passed). It exits
with the script's code once no process of the group is left.

It runs in a session of its own, so freezing or killing the renewer's process group (Ctrl-C,
``kill -STOP -PGID``) never reaches it. It is a child subreaper, so grandchildren orphaned by
``uv run`` are reparented to it and reaped rather than left as zombies in the group.

Stdlib only, and run as ``python -I watchdog.py``: it must not import the backend's environment
(``PYTHONPATH`` and friends are meant for the script, which inherits our environment).
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import os
import select
import signal
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
_CLOCK = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)
GROUP_GONE_WAIT = 2.0  # after SIGKILL, how long to wait for the group to be reaped
# Wake up at least this often: select() sleeps on CLOCK_MONOTONIC, which stops while the host is
# suspended, so after a resume a deadline on CLOCK_BOOTTIME is noticed within this time.
MAX_SLEEP = 0.5


def clock() -> float:
    """Same clock as ``spiffctl.lease.now``: counts suspended time, never jumps."""
    return time.clock_gettime(_CLOCK)


def _subreaper() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: orphans go to init, which reaps them too


def _killpg(pgid: int, sig: int) -> bool:
    """Signal the group; False when no process of it is left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # a member changed uid; it still exists
    return True


def _code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1


class Watchdog:
    def __init__(self, control: int, report: int, fence: float, term_grace: float) -> None:
        self.control = control
        self.report_fd = report
        self.fence = fence
        self.term_grace = term_grace
        self.stop_at: float | None = None  # when a stop was requested
        self.stop_grace = 0.0
        self.termed = False
        self.killed = False
        self.how = "own"
        self.buffer = b""
        self.pid = 0
        self.code: int | None = None

    def report(self, line: str) -> None:
        try:
            os.write(self.report_fd, (line + "\n").encode())
        except OSError:
            pass  # the renewer is gone; the fence does not depend on it

    def term_at(self) -> float:
        t = self.fence - self.term_grace
        return min(t, self.stop_at) if self.stop_at is not None else t

    def kill_at(self) -> float:
        t = self.fence
        return min(t, self.stop_at + self.stop_grace) if self.stop_at is not None else t

    def request_stop(self, grace: float) -> None:
        now = clock()
        if self.stop_at is None or now + grace < self.stop_at + self.stop_grace:
            self.stop_at, self.stop_grace = now, grace

    def read_control(self) -> None:
        try:
            data = os.read(self.control, 4096)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EINTR):
                return
            data = b""
        if not data:
            os.close(self.control)
            self.control = -1
            self.request_stop(self.term_grace)
            return
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for raw in lines:
            verb, _, arg = raw.decode().partition(" ")
            try:
                value = float(arg)
            except ValueError:
                continue
            if verb == "fence":
                self.fence = value
            elif verb == "stop":
                self.request_stop(value)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.pid and self.code is None:
                self.code = _code(status)

    def enforce(self) -> None:
        now = clock()
        if not self.killed and now >= self.kill_at():
            # Past the deadline SIGTERM is pointless: the lease may already be someone else's.
            self._cause()
            _killpg(self.pid, signal.SIGKILL)
            self.killed = True
        elif not self.termed and now >= self.term_at():
            self._cause()
            _killpg(self.pid, signal.SIGTERM)
            self.termed = True

    def _cause(self) -> None:
        if self.how == "own":
            self.how = "stopped" if self.stop_at is not None else "fenced"

    def finish(self) -> int:
        """The leader exited: make sure nothing of its group survives, then report."""
        assert self.code is not None
        if _killpg(self.pid, 0):
            _killpg(self.pid, signal.SIGTERM)
            end = min(clock() + self.term_grace, self.fence)
            while clock() < end and _killpg(self.pid, 0):
                self.reap()
                time.sleep(0.02)
            if _killpg(self.pid, signal.SIGKILL):
                end = clock() + GROUP_GONE_WAIT
                while clock() < end and _killpg(self.pid, 0):
                    self.reap()
                    time.sleep(0.01)
        self.report(f"exited {self.code} {self.how}")
        return self.code

    def run(self, argv: list[str], cwd: str) -> int:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        # Someone killing the fence means "stop the script", never "leave it running unfenced".
        signal.signal(signal.SIGTERM, lambda *_: self.request_stop(self.term_grace))
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        _subreaper()
        if clock() >= self.fence - self.term_grace:
            # We were delayed (frozen, overloaded) past the lease: starting now could overlap.
            self.report("exited 0 fenced")
            return 0
        try:
            child = subprocess.Popen(argv, cwd=cwd, start_new_session=True, close_fds=True)
        except OSError as e:
            self.report(f"failed {e.errno} {e.strerror}")
            return 127 if e.errno == errno.ENOENT else 126
        self.pid = child.pid
        self.report(f"started {self.pid}")
        while True:
            self.reap()
            if self.code is not None:
                return self.finish()
            self.enforce()
            now = clock()
            pending = [t for t, done in ((self.term_at(), self.termed), (self.kill_at(), self.killed)) if not done]
            timeout = max(0.0, min([*pending, now + MAX_SLEEP]) - now)
            fds = [wake_r] + ([self.control] if self.control >= 0 else [])
            try:
                ready, _, _ = select.select(fds, [], [], timeout)
            except InterruptedError:
                continue
            if wake_r in ready:
                try:
                    os.read(wake_r, 512)
                except BlockingIOError:
                    pass
            if self.control in ready:
                self.read_control()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spiffctl-watchdog")
    parser.add_argument("--control", type=int, required=True)
    parser.add_argument("--report", type=int, required=True)
    parser.add_argument("--fence", type=float, required=True)
    parser.add_argument("--term-grace", type=float, required=True)
    parser.add_argument("--cwd", required=True)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args(argv)
    dog = Watchdog(args.control, args.report, args.fence, args.term_grace)
    return dog.run(args.command, args.cwd)


if __name__ == "__main__":
    sys.exit(main())
