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

The watcher is a few lines of POSIX sh (:data:`WATCHER`: a shell costs a fraction of an
interpreter's memory, docs/figures.md#p7), in supervisord's process group, the pipe as its
standard input; it ignores the terminal's and the engine's signals, which are supervisord's to
handle: it ends with the pipe.
"""

from __future__ import annotations

import math
import os
import subprocess

DONE = b"done"
POLL = 0.05
SHELL = "/bin/sh"

# $1: the grace in hundredths of a second. A group is "+PGID" or "-PGID" on a line of its own;
# "done" ends the watcher quietly, the end of the pipe stops the groups it knows. The clock is
# /proc/uptime (hundredths, monotonic), polled every POLL s. A group with no process left is
# forgotten before SIGKILL (its number may be reused); `kill -- PGID` as well as `-- -PGID`
# reaches a program killed before its setpgrp.
WATCHER = r"""
trap '' INT TERM HUP QUIT
groups=
while read -r word || [ -n "$word" ]; do
    case $word in
        done) exit 0 ;;
        [+-]*[!0-9]* | [+-]) ;;
        +*) case " $groups " in *" ${word#+} "*) ;; *) groups="$groups ${word#+}" ;; esac ;;
        -*) kept=
            for g in $groups; do [ "$g" = "${word#-}" ] || kept="$kept $g"; done
            groups=$kept ;;
    esac
    word=
done
[ -n "$groups" ] || exit 0
now() { read -r up _ < /proc/uptime; echo $(( ${up%.*} * 100 + 1${up#*.} - 100 )); }
signal_all() { for g in $groups; do kill -s "$1" -- "-$g" "$g" 2>/dev/null; done; }
alive() {
    left=
    for g in $groups; do kill -s 0 -- "-$g" 2>/dev/null && left="$left $g"; done
    groups=$left
    [ -n "$groups" ]
}
signal_all TERM
deadline=$(( $(now) + $1 ))
while alive && [ "$(now)" -lt "$deadline" ]; do sleep POLL; done
alive && signal_all KILL
echo "spiffctl: supervisord died; its roles were stopped" >&2
""".replace("POLL", str(POLL))


class Guard:
    """supervisord's end of the pipe: tell the watcher about each program, then that all is done."""

    def __init__(self, stop_grace: float) -> None:
        read, self.fd = os.pipe()
        os.set_inheritable(self.fd, False)
        hundredths = str(math.ceil(stop_grace * 100))
        try:
            self.process = subprocess.Popen([SHELL, "-c", WATCHER, "spiffctl-orphans", hundredths], stdin=read)
        finally:
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
