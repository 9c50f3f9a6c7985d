"""The fence: a tiny process that is the Background script's parent and only enforces deadlines.

It exists because the renewer (:mod:`spiffctl.lease.guard`) can be frozen (SIGSTOP, a stuck store
call, a paused VM thread) or killed; the script must still die before the lease can expire.
This process knows nothing about the store. It starts the script in a new session (so the script,
``uv run`` and the python it spawns form one process group it can kill as a whole), then obeys the
control pipe (:mod:`spiffctl.lease.messages`):

* ``Fence(t)``  the script must be dead by ``t`` on :func:`spiffctl.lease.clock.now`
  (``CLOCK_BOOTTIME``, shared by all processes on the host): SIGTERM to the group at
  ``t - term_grace``, SIGKILL at ``t``. Each successful renewal sends a later ``t``.
* ``Stop(g)``   stop now: SIGTERM to the group, SIGKILL after ``g`` seconds (never after ``t``).
* end of file   the renewer died: behave as ``Stop(term_grace)``. So does a line that is not a
  valid message: a confused renewer must never keep the script running.

and reports ``Started(pid)`` (or ``Exited(0, fenced)`` without starting it when the deadline is
already too close, or ``Failed(code, reason)`` when the script cannot be executed), then
``Exited(code, how)`` once no process of the group is left, and exits with the script's code.

It runs in a session of its own, so freezing or killing the renewer's process group (Ctrl-C,
``kill -STOP -PGID``) never reaches it. It is a child subreaper, so grandchildren orphaned by
``uv run`` are reparented to it and reaped rather than left as zombies in the group.

Run by :data:`spiffctl.lease.guard.WATCHDOG` (``python -m spiffctl.lease.watchdog`` works too):
isolated mode ignores ``PYTHONPATH``, the user's site-packages and the working directory, which are
meant for the script (it inherits our environment); ``-S`` skips site and its ``.pth`` files, and
spiffctl is found where the guard's copy is installed. It imports only the standard library and
the stdlib-only :mod:`spiffctl.lease.clock`, :mod:`spiffctl.lease.messages`, :mod:`spiffctl.util.prctl`
and :mod:`spiffctl.util.procs` (tests/test_watchdog.py checks the list).
"""

from __future__ import annotations

import errno
import os
import select
import signal
import sys

from spiffctl.lease import messages
from spiffctl.lease.clock import now
from spiffctl.lease.messages import Exited, Failed, Fence, Go, How, Loaded, LoadFailed, Started, Stop
from spiffctl.util import prctl, procs

INF = float("inf")

# Wake up at least this often: select() sleeps on CLOCK_MONOTONIC, which stops while the host is
# suspended, so after a resume a deadline on CLOCK_BOOTTIME is noticed within this time.
MAX_SLEEP = 0.5


class Watchdog:
    def __init__(self, control: int, report: int, fence: float | None, term_grace: float) -> None:
        self.control = control
        self.report_fd = report
        # None: a warm child that was not told to go, which is not a scheduler and is not fenced.
        self.fence = INF if fence is None else fence
        self.warm = fence is None
        self.go_w = -1  # warm: our end of the child's channel
        self.child_reports = -1  # warm: the child's report pipe
        self.term_grace = term_grace
        self.stop_at: float | None = None  # when a stop was requested
        self.stop_grace = 0.0
        self.termed = False
        self.killed = False
        self.how = How.OWN
        self.reader = messages.Reader(messages.CONTROL)
        self.pid = 0
        self.code: int | None = None

    def report(self, message: messages.Report) -> None:
        try:
            os.write(self.report_fd, messages.encode(message))
        except OSError:
            pass  # the renewer is gone; the fence does not depend on it

    def term_at(self) -> float:
        t = self.fence - self.term_grace
        return min(t, self.stop_at) if self.stop_at is not None else t

    def kill_at(self) -> float:
        t = self.fence
        return min(t, self.stop_at + self.stop_grace) if self.stop_at is not None else t

    def request_stop(self, grace: float) -> None:
        t = now()
        if self.stop_at is None or t + grace < self.stop_at + self.stop_grace:
            self.stop_at, self.stop_grace = t, grace

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
            self._close_channel()  # a warm child exits at once on its own, too
            return
        try:
            received = self.reader.feed(data)
        except messages.ProtocolError:
            self.request_stop(self.term_grace)
            return
        for message in received:
            if isinstance(message, Fence):
                self.fence = message.until
            elif isinstance(message, Stop):
                self.request_stop(message.grace)
            elif isinstance(message, Go):
                self.go(message)

    def go(self, message: Go) -> None:
        """Arm the fence first; pass ``go`` on only while the fence's SIGTERM time is still ahead."""
        self.fence = min(self.fence, message.until)
        if self.go_w >= 0 and now() < self.fence - self.term_grace:
            try:
                os.write(self.go_w, f"go {message.epoch}\n".encode())
            except OSError:
                pass  # it is gone already; reaping it reports the end

    def _close_channel(self) -> None:
        if self.go_w >= 0:
            os.close(self.go_w)
            self.go_w = -1

    def read_child_reports(self) -> None:
        """The warm child's ``loaded`` / ``failed <reason>`` / ``unusable <reason>``, passed on as messages."""
        try:
            data = os.read(self.child_reports, 4096)
        except OSError:
            data = b""
        if not data:
            os.close(self.child_reports)
            self.child_reports = -1
            return
        for line in data.decode(errors="replace").splitlines():
            word, _, reason = line.partition(" ")
            if word == "loaded":
                self.report(Loaded())
            elif word in ("failed", "unusable"):
                self.report(LoadFailed(word == "unusable", reason or "no reason given"))

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.pid and self.code is None:
                self.code = procs.exit_code(status)

    def enforce(self) -> None:
        t = now()
        if not self.killed and t >= self.kill_at():
            # Past the deadline SIGTERM is pointless: the lease may already be someone else's.
            self._cause()
            procs.signal_group(self.pid, signal.SIGKILL)
            self.killed = True
        elif not self.termed and t >= self.term_at():
            self._cause()
            procs.signal_group(self.pid, signal.SIGTERM)
            self.termed = True

    def _cause(self) -> None:
        if self.how is How.OWN:
            self.how = How.STOPPED if self.stop_at is not None else How.FENCED

    def finish(self) -> int:
        """The leader exited: make sure nothing of its group survives, then report."""
        assert self.code is not None
        grace = min(self.term_grace, self.fence - now())  # fence may be INF: a warm child never told to go
        procs.stop_group(self.pid, grace, reap=self.reap, clock=now)
        self.report(Exited(self.code, self.how))
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
        prctl.become_subreaper()
        if now() >= self.fence - self.term_grace:
            # We were delayed (frozen, overloaded) past the lease: starting now could overlap.
            self.report(Exited(0, How.FENCED))
            return 0
        try:
            self.pid = self.spawn(argv, cwd)
        except OSError as e:
            code = 127 if e.errno == errno.ENOENT else 126
            self.report(Failed(code, e.strerror or str(e)))
            return code
        self.report(Started(self.pid))
        while True:
            self.reap()
            if self.code is not None:
                return self.finish()
            self.enforce()
            t = now()
            pending = [at for at, done in ((self.term_at(), self.termed), (self.kill_at(), self.killed)) if not done]
            timeout = max(0.0, min([*pending, t + MAX_SLEEP]) - t)
            fds = [wake_r] + [fd for fd in (self.control, self.child_reports) if fd >= 0]
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
            if self.child_reports in ready:
                self.read_child_reports()

    def spawn(self, argv: list[str], cwd: str) -> int:
        """The script, or a warm child with its channel and report fds appended to its arguments."""
        if not self.warm:
            return spawn(argv, cwd)
        go_r, self.go_w = os.pipe()
        self.child_reports, report_w = os.pipe()
        try:
            return spawn([*argv, str(go_r), str(report_w)], cwd, keep=(go_r, report_w))
        finally:
            os.close(go_r)
            os.close(report_w)


def spawn(argv: list[str], cwd: str, keep: tuple[int, ...] = ()) -> int:
    """``argv`` in ``cwd`` and a new session, with descriptors 0-2 and ``keep`` only: its pid, or
    :class:`OSError` when it cannot be executed.

    ``posix_spawn``, not :mod:`subprocess`, which (with the threading it loads) would cost this
    process ~2 MB for the script's whole life. As ``subprocess.Popen`` does, SIGPIPE and SIGXFSZ,
    which Python ignores, are reset to their default for the script."""
    os.chdir(cwd)  # no spawn attribute for it; this process never resolves a relative path
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            try:
                os.set_inheritable(fd, fd in keep)
            except OSError:
                pass  # the listing's own descriptor, closed by now
    return os.posix_spawnp(argv[0], argv, os.environ, setsid=True, setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))


USAGE = "usage: spiffctl-watchdog --control FD --report FD (--fence T | --warm) --term-grace S --cwd DIR -- COMMAND..."
VALUED = ("--control", "--report", "--fence", "--term-grace", "--cwd")


def parse(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """The options and the command after ``--``; :class:`ValueError` saying what is wrong.

    Not argparse: with the re and gettext it loads, it would cost this process ~1 MB for the
    script's whole life, and spiffctl is its only caller."""
    options: dict[str, str] = {}
    rest = list(argv)
    while rest and rest[0] != "--":
        name = rest.pop(0)
        if name == "--warm":
            options["warm"] = ""
        elif name in VALUED and rest:
            options[name[2:]] = rest.pop(0)
        else:
            raise ValueError(f"unexpected argument {name!r}")
    for name in ("control", "report", "term-grace", "cwd"):
        if name not in options:
            raise ValueError(f"--{name} is required")
    if ("warm" in options) == ("fence" in options):
        raise ValueError("give exactly one of --fence and --warm")
    if len(rest) < 2:
        raise ValueError("no command after --")
    return options, rest[1:]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    try:
        options, command = parse(args)
        fence = None if "warm" in options else float(options["fence"])
        dog = Watchdog(int(options["control"]), int(options["report"]), fence, float(options["term-grace"]))
    except ValueError as e:
        print(f"{USAGE}\nspiffctl-watchdog: error: {e}", file=sys.stderr)
        return 2
    return dog.run(command, options["cwd"])


if __name__ == "__main__":
    sys.exit(main())
