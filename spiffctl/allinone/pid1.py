"""``python -m spiffctl.allinone.pid1 CONF``: supervisord in this very process, then the run's exit code.

``spiffctl run --role all`` execs this module, so supervisord keeps spiffctl's PID (PID 1 in a
container) and runs in the foreground, where the container engine's signals reach it. Three choices and why:

* **supervisord in-process, not ``exec supervisord``.** supervisord exits 0 on every shutdown,
  including the one our fail-fast listener triggers. Running its ``main()`` here lets us return
  the code the listener recorded (:data:`spiffctl.allinone.listener.OUTCOME`) when it returns. The other
  way to carry the code out, a thin spiffctl parent above supervisord, costs a second resident
  interpreter (against the 45 MB PSS budget) and a signal-forwarding layer; here there is one
  process for all supervision.
* **A fresh interpreter (exec), not supervisord inside the spiffctl process that checked the
  configuration.** That process holds typer, the database and broker drivers and their
  connections; this module imports supervisor and a few stdlib modules only.
* **PID 1 duties.** supervisord handles SIGTERM/SIGINT/SIGQUIT (stop everything), SIGHUP
  (reload) and SIGCHLD, and its main loop reaps *every* child with ``waitpid(-1)``, including
  orphans reparented to it ("reaped unknown pid"). When not PID 1 we become a child subreaper so
  orphans of the roles still come to us rather than to the host's init. After supervisord
  returns, whatever is left of our descendants (a double-forked daemon outside the roles'
  process groups) is killed and reaped, as the kernel would when PID 1 exits, so a run never
  leaves a process behind.
"""

from __future__ import annotations

import os
import signal
import stat
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from spiffctl import log
from spiffctl.allinone import dropwriter, handoff, listener
from spiffctl.util import prctl, privdir, procfs
from spiffctl.util.errors import CONFIG, SOFTWARE

LEFTOVER_WAIT = 1.0


def _early(signum: int, frame: FrameType | None) -> None:
    listener.EARLY_SIGNAL.append(signum)


def become_subreaper() -> None:
    if os.getpid() == 1:
        return
    prctl.become_subreaper()


def stop_with_parent() -> None:
    """Outside a container: a clean stop (SIGTERM) when whoever started the all-in-one dies.

    As PID 1 (or a child of init) there is no parent to lose. A parent already gone by the time
    the signal is armed would never send it: stop now instead."""
    parent = os.getppid()
    if os.getpid() == 1 or parent <= 1:
        return
    prctl.die_with_parent(signal.SIGTERM)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


def reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_leftovers() -> None:
    deadline = time.monotonic() + LEFTOVER_WAIT
    killed = 0
    while True:
        reap()
        alive = procfs.children()
        if not alive or time.monotonic() > deadline:
            break
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        time.sleep(0.02)
    if killed:
        listener.say(f"killed {killed} leftover process{'es' if killed != 1 else ''} the roles left behind")


def untrusted(conf: Path) -> str | None:
    """Why supervisord must not read ``conf``: it runs the commands in it, often as root."""
    why = privdir.refusal(conf.parent)
    if why:
        return f"its folder {why}"
    st = os.lstat(conf)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        return "is not a regular file of ours that only we can write"
    return None


def write_pidfile(options: Any) -> None:
    """supervisord's own ``write_pidfile`` opens the path with ``open(..., "w")``, through any link."""
    try:
        privdir.write_bytes(Path(options.pidfile), b"%d\n" % os.getpid())
    except OSError:
        options.logger.critical(f"could not write pidfile {options.pidfile}")
    else:
        options.unlink_pidfile = True


class SupervisordStream:
    """What supervisord writes to stdout or stderr itself, as JSON lines (``role``: supervisord)."""

    def __init__(self, channel: str) -> None:
        from spiffctl.log.child import JsonLines

        self.channel = channel
        self.lines = JsonLines()

    def write(self, text: str) -> int:
        self.lines.feed("supervisord", self.channel, text)
        return len(text)

    def flush(self) -> None:
        self.lines.flush("supervisord")


def finish(code: int) -> int:
    if listener.ORPHANS is not None:
        listener.ORPHANS.done()
    kill_leftovers()
    dropwriter.finish()
    return code


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m spiffctl.allinone.pid1 CONF (run by `spiffctl run --role all`)", file=sys.stderr)
        return 2
    try:
        why = untrusted(Path(argv[1]))
    except OSError as e:
        why = f"cannot be checked ({e.strerror})"
    if why:
        listener.say(f"{argv[1]} {why}; refusing to start supervisord with it", level="ERROR")
        return CONFIG
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _early)
    stop_with_parent()
    become_subreaper()
    log.set_role("all")
    listener.HANDED_SECRETS |= handoff.take(os.environ)
    # supervisord's pidfile and socket: owner only. The roles get the operator's umask back
    # through each program's umask= line.
    os.umask(0o077)
    from supervisor import options, supervisord

    options.ServerOptions.write_pidfile = write_pidfile
    if log.use_json():
        # supervisord's own words (a refused configuration) are lines of the run like any role's.
        options.Options.stdout = SupervisordStream("stdout")
        options.Options.stderr = SupervisordStream("stderr")
    try:
        supervisord.main(args=["-c", argv[1]])
    except SystemExit as e:
        # supervisord's own usage errors (it already printed the reason).
        if e.code not in (0, None):
            listener.say(f"supervisord refused {argv[1]} (exit {e.code})", level="ERROR")
            return finish(SOFTWARE)
    signal.setitimer(signal.ITIMER_REAL, 0)  # the listener's stop tick
    return finish(listener.OUTCOME.code)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
