"""Fail fast, prefix logs, account for the stop: an in-process supervisord event listener.

supervisord does not exit when a program dies or goes FATAL (Supervisor issues #712, #733), and
it exits 0 whatever happened. The classic cure is an ``[eventlistener:x]`` process that reads
PROCESS_STATE events over the listener protocol and calls ``supervisor.shutdown``. We subscribe
to the same events *inside* supervisord instead, through its documented plugin hook (an
``[rpcinterface:spiffctl]`` factory is called with the supervisord object at start):

* no second resident interpreter (against the 45 MB PSS budget), no protocol buffer that
  overflows and drops events, no second or so of listener latency;
* the exit code stays in this process, where :mod:`spiffctl.allinone.pid1` reads it after supervisord
  returns: no file to write, trust or clean up;
* the same hook gets the output chunks for :mod:`spiffctl.allinone.logprefix` and exposes
  ``spiffctl.getOutcome`` over the private socket for ``spiffctl status``.

Policy:

* every role is a long-running server, so *any* exit that supervisord did not ask for counts,
  code 0 included (a role that is gone leaves the box half-working);
* ``SPIFFCTL_RESTARTS=N``: the first N such exits of a role are restarted by supervisord
  (``autorestart``); exit N+1 stops everything;
* on failure: one line naming the role and its exit code, every other role stopped with at most
  :data:`FAIL_FAST_GRACE` seconds of grace (so the whole run ends within 5 s), exit with the
  role's code (128+N for signal N; 1 if it exited 0);
* on SIGTERM/SIGINT: exit 0 if every role stopped within its grace, else 137 (the code of the
  role supervisord had to SIGKILL), naming it.

Latency: supervisord's loop polls with a fixed 1 s timeout and Python retries an interrupted
poll (PEP 475), so on its own it notices a SIGTERM up to 1 s late and a passed stop deadline up
to 1 s late: 8 s of grace could become 10 s, docker's SIGKILL. A signal wake-up pipe
(``signal.set_wakeup_fd``) in supervisord's poll set makes any signal end the poll at once, and
while stopping a 0.1 s interval timer (SIGALRM, ignored) keeps the deadline checks tight.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping
from typing import Any

from supervisor import events
from supervisor.medusa import asyncore_25
from supervisor.states import ProcessStates, SupervisorStates

from spiffctl import log
from spiffctl.allinone import dropwriter, orphans
from spiffctl.allinone.logprefix import LinePrefixer, write_all
from spiffctl.util import procs
from spiffctl.util.redact import Redactor

# The failing role is already gone; the healthy ones get this much time at most, so that the
# whole run ends within 5 s of the failure.
FAIL_FAST_GRACE = 3
KILLED = procs.died_of(signal.SIGKILL)
STOP_TICK = 0.1


class Outcome:
    """How the run ends: set once, by the first failure (or by a kill at stop)."""

    # not a dataclass: PID 1 (supervisord) imports this module, and dataclasses costs it ~1 MB
    def __init__(self) -> None:
        self.code = 0
        self.role = ""
        self.message = ""


# Read by spiffctl.allinone.pid1 after supervisord returns (same process). A reload (SIGHUP) creates a new
# Watcher but keeps a failure already recorded.
OUTCOME = Outcome()
# A SIGTERM/SIGINT that arrived before supervisord installed its own handlers (set by pid1).
EARLY_SIGNAL: list[int] = []
# The watcher that stops the roles if supervisord dies without stopping them (one per run, kept
# across reloads); pid1 tells it "done" after supervisord returns.
ORPHANS: orphans.Guard | None = None
# The secrets `run --role all` resolved, handed over by pid1 (spiffctl.allinone.handoff).
HANDED_SECRETS: set[str] = set()


def say(message: str, *, level: str | None = None) -> None:
    text = log.line(message, level=level)
    if text is not None:
        write_all(2, f"{text}\n".encode())


def output_redactor(env: Mapping[str, str]) -> Redactor:
    """What the roles must never print: the secrets of the environment they all inherit from us.

    URL passwords (those of URLs read from ``*_FILE`` included), secret-named variables and
    ``*_FILE`` contents: those ``run --role all`` resolved (handed over in memory), and those of
    the files as they are now, since each role reads them again at every start.
    """
    redactor = Redactor.for_env(env)
    redactor.add(HANDED_SECRETS)
    return redactor


def exit_code_of(status: int | None, fallback: int | None) -> tuple[int, str]:
    """(code, words) from a raw wait status; supervisord's own ``exitstatus`` when we have none."""
    if status is not None:
        try:
            code: int | None = procs.exit_code(status)
        except ValueError:  # stopped or continued: not an end
            code = None
        sig = procs.killed_by(status)
        if code is not None and sig is not None:
            try:
                name = signal.Signals(sig).name
            except ValueError:
                name = f"signal {sig}"
            return code, f"killed by {name} (exit code {code})"
        if code is not None:
            return code, f"exited with code {code}"
    if fallback is None or fallback < 0:
        return 1, "exited (code unknown)"
    return fallback, f"exited with code {fallback}"


def prefixer(scrub: Redactor) -> LinePrefixer:
    """The roles' lines as the operator chose: ``role | line`` or JSON objects."""
    if log.use_json():
        from spiffctl.log.child import JsonLines

        return JsonLines(scrub=scrub)
    return LinePrefixer(scrub=scrub)


class WakeUp:
    """The read end of the signal wake-up pipe, as an asyncore-style dispatcher in supervisord's poll set."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def handle_read_event(self) -> None:
        try:
            while os.read(self.fd, 4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def handle_write_event(self) -> None:
        pass

    def handle_error(self) -> None:
        pass


def install_wakeup() -> None:
    """Signals (SIGTERM, SIGCHLD, our SIGALRM tick) end supervisord's poll at once."""
    for fd, dispatcher in list(asyncore_25.socket_map.items()):
        if isinstance(dispatcher, WakeUp):  # left over from before a reload (SIGHUP)
            del asyncore_25.socket_map[fd]
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    asyncore_25.socket_map[read_end] = WakeUp(read_end)
    # Default action of SIGALRM is to terminate: the tick must be harmless.
    signal.signal(signal.SIGALRM, lambda signum, frame: None)


def start_stop_tick() -> None:
    signal.setitimer(signal.ITIMER_REAL, STOP_TICK, STOP_TICK)


class Watcher:
    def __init__(self, supervisord: Any, restarts: int, stop_grace: int) -> None:
        self.supervisord = supervisord
        self.options = supervisord.options
        self.restarts = restarts
        self.stop_grace = stop_grace
        self.exits: dict[str, int] = {}
        self.statuses: dict[int, int] = {}  # pid -> raw wait status, for exit codes and signals
        self.prefixer = prefixer(output_redactor(os.environ))
        self.stop_announced = False

    def install(self) -> None:
        events.subscribe(events.ProcessLogEvent, self.on_log)
        events.subscribe(events.ProcessStateEvent, self.on_state)
        events.subscribe(events.SupervisorRunningEvent, self.on_running)
        events.subscribe(events.SupervisorStoppingEvent, self.on_stopping)
        events.subscribe(events.Tick5Event, lambda event: dropwriter.pump())
        self._guard_orphans()
        self._wrap_waitpid()
        install_wakeup()

    def _guard_orphans(self) -> None:
        """Every program's process group goes to the watcher as it is forked (see orphans)."""
        global ORPHANS
        if ORPHANS is None:
            ORPHANS = orphans.Guard(self.stop_grace)
        original: Callable[[], int] | None = getattr(self.options, "fork", None)
        if original is None or getattr(original, "spiffctl", False):
            return  # another supervisor version, or a reload that kept the wrapped options
        guard = ORPHANS

        def fork() -> int:
            pid = original()
            if pid > 0:
                guard.adopt(pid)
            return pid

        fork.spiffctl = True  # type: ignore[attr-defined]
        self.options.fork = fork

    def _wrap_waitpid(self) -> None:
        """Keep the raw wait status: supervisord reduces a signal death to -1 and forgets the signal."""
        original: Callable[[], tuple[int, int]] | None = getattr(self.options, "waitpid", None)
        if original is None:
            return  # another supervisor version: codes fall back to supervisord's exitstatus

        def waitpid() -> tuple[int, int]:
            pid, status = original()
            if pid:
                if ORPHANS is not None:
                    ORPHANS.drop(pid)
                self.statuses[pid] = status
                if len(self.statuses) > 256:  # orphans reaped as PID 1 are never looked up
                    self.statuses.pop(next(iter(self.statuses)))
            return pid, status

        self.options.waitpid = waitpid

    # --- events -------------------------------------------------------------------------

    def on_log(self, event: Any) -> None:
        self.prefixer.feed(event.process.config.name, event.channel, event.data)

    def on_running(self, event: Any) -> None:
        if EARLY_SIGNAL:
            self.options.mood = SupervisorStates.SHUTDOWN

    def on_stopping(self, event: Any) -> None:
        start_stop_tick()
        if not OUTCOME.code and not self.stop_announced:
            self.stop_announced = True
            say(f"stopping every role (grace {self.stop_grace} s)")

    def on_state(self, event: Any) -> None:
        process = event.process
        name = process.config.name
        state = process.get_state()
        if state == ProcessStates.RUNNING:
            say(log.Event(f"{name} started (pid {process.pid})", "started", json_only=True, role=name, pid=process.pid))
        if state not in (ProcessStates.EXITED, ProcessStates.STOPPED, ProcessStates.BACKOFF, ProcessStates.FATAL):
            return
        self.prefixer.flush(name)
        status = self.statuses.pop(process.pid, None) if process.pid else None
        stopping = self.options.mood < SupervisorStates.RUNNING
        if state == ProcessStates.STOPPED:
            if status is not None and procs.killed_by(status) == signal.SIGKILL:
                text = f"{name} did not stop within its grace period and was killed (SIGKILL)"
                say(log.Event(text, "killed", level="WARNING", role=name, code=KILLED))
                self.record(name, KILLED, f"{name} did not stop in time and was killed")
            else:
                code, _ = exit_code_of(status, process.exitstatus)
                say(log.Event(f"{name} stopped with code {code}", "stopped", json_only=True, role=name, code=code))
            return
        if state == ProcessStates.EXITED:
            code, words = exit_code_of(status, process.exitstatus)
            if stopping:
                # exited on its own while everything stops: nothing left to decide
                say(log.Event(f"{name} stopped with code {code}", "stopped", json_only=True, role=name, code=code))
                return
            self.count_exit(name, code, words)
        elif state == ProcessStates.BACKOFF:
            # startsecs=0 makes every exit EXITED; BACKOFF means supervisord could not spawn it.
            self.count_exit(name, 1, f"could not be started ({process.spawnerr or 'spawn error'})")
        elif state == ProcessStates.FATAL:
            self.fail(name, 1, f"could not be started ({process.spawnerr or 'spawn error'})")

    # --- decisions ----------------------------------------------------------------------

    def count_exit(self, name: str, code: int, words: str) -> None:
        self.exits[name] = self.exits.get(name, 0) + 1
        if self.exits[name] <= self.restarts:
            text = f"{name} {words}; restarting it ({self.exits[name]} of {self.restarts} restarts)"
            say(log.Event(text, "restarted", level="WARNING", role=name, code=code, restart=self.exits[name]))
            return
        self.fail(name, code or 1, words)

    def fail(self, name: str, code: int, words: str) -> None:
        if OUTCOME.code or self.options.mood < SupervisorStates.RUNNING:
            return
        budget = f" after {self.restarts} restart{'s' if self.restarts != 1 else ''}" if self.restarts else ""
        say(log.Event(f"{name} {words}{budget}; stopping every role", "exited", level="ERROR", role=name, code=code))
        self.record(name, code, f"{name} {words}")
        self.stop_announced = True
        for group in self.supervisord.process_groups.values():
            for process in group.processes.values():
                # Mutating the config is how supervisord's own stop reads the grace (stopwaitsecs).
                config = process.config
                config.stopwaitsecs = min(config.stopwaitsecs, FAIL_FAST_GRACE)
        self.options.mood = SupervisorStates.SHUTDOWN

    @staticmethod
    def record(name: str, code: int, message: str) -> None:
        if not OUTCOME.code:
            OUTCOME.code, OUTCOME.role, OUTCOME.message = code, name, message


class SpiffctlRPC:
    """``spiffctl.*`` over the private socket, for ``spiffctl status``."""

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher

    def getOutcome(self) -> dict[str, Any]:  # camelCase: XML-RPC naming, like supervisor's own
        return {"code": OUTCOME.code, "role": OUTCOME.role, "message": OUTCOME.message}


def make_rpcinterface(supervisord: Any, *, restarts: str, stop_grace: str, **_: str) -> SpiffctlRPC:
    """The ``supervisor.rpcinterface_factory`` named in the rendered configuration."""
    watcher = Watcher(supervisord, int(restarts), int(stop_grace))
    watcher.install()
    return SpiffctlRPC(watcher)
