"""Runs the Background script under the lease: the I/O shell around :mod:`spiffctl.lease.machine`.

Process tree while holding the lease::

    spiffctl (this module: the renewer; PID 1 in a container)
    └── watchdog          own session: freezing or killing spiffctl's group does not reach it
        └── bin script    own session = the group that is fenced (bash -> uv run -> python)

Every decision (when to poll, renew, start, fence, stop, release, exit, and what to log) is the
state machine's. This module performs its actions and turns the world into its events:

* store calls (:class:`~spiffctl.lease.stores.Store`): the answer, :class:`~spiffctl.lease.stores.StoreOutage`
  or :class:`~spiffctl.lease.stores.StoreRefusal` become the next event, delivered at once;
* the watchdog (:mod:`spiffctl.lease.watchdog`): started with ``python -I -S`` (:data:`WATCHDOG`), driven over a control
  pipe, heard over a report pipe, both carrying :mod:`spiffctl.lease.messages`;
* SIGTERM/SIGINT: recorded by the handler, woken up through ``signal.set_wakeup_fd``;
* time: ``select`` sleeps until the machine's :meth:`~spiffctl.lease.machine.Machine.wakeup`
  (at most :data:`MAX_SLEEP`, see there);
* the state file and log lines (every line through the settings' redactor).

Anything raised that is neither an outage nor a refusal, here, in the store or in the machine, is
a bug and is never retried as if the store were down: the script's group is killed first, then
spiffctl exits 70 with one line (``SPIFFCTL_DEBUG=1`` shows the traceback instead).

State file ``<run dir>/background.json`` (see :mod:`spiffctl.state`), rewritten at every renewal
and standby poll, read by ``spiffctl healthcheck --role background``::

    {"pid": 1,              # this spiffctl process
     "start": 123456,       # its start time (/proc ticks): a file left by an earlier process is never trusted
     "mode": "holder",      # holder | standby | unleased (SPIFFCTL_LOCK=off: the script was exec'd
                            #   in place with this pid; the file is then written once, never refreshed)
     "child_pid": 42,       # the script's pid (= its process group) or null
     "epoch": 7,            # our lease epoch while holder, else null
     "holder": "host pid 9 since ...",  # standby: who holds the lease, if known, else null
     "store": true,         # the last call to the lease store got an answer (null: not tried yet)
     "updated": 1793000000.5,  # wall-clock seconds of this write
     "interval": 5.0}       # seconds between rewrites; stale after a few of these means stuck
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NoReturn

from spiffctl import state
from spiffctl.config.settings import Settings
from spiffctl.lease import clock, messages
from spiffctl.lease.config import LOCK, LOCK_OFF_EXPLAINED, LOCK_URL, LeaseConfig, lease_config
from spiffctl.lease.logevents import last_event, lease_event
from spiffctl.lease.machine import (
    Acquire,
    Acquired,
    Action,
    Bug,
    Checked,
    CheckStore,
    Event,
    Exit,
    GroupKilled,
    HeldBy,
    KillGroup,
    Lost,
    Machine,
    Names,
    Release,
    Released,
    Renew,
    Renewed,
    Say,
    Signal,
    StartChild,
    StartWarm,
    StoreDown,
    StoreRefused,
    Tick,
    WatchdogGone,
    WriteState,
)
from spiffctl.lease.messages import Exited, Failed, Fence, Go, Started, Stop
from spiffctl.lease.start import WARM_CHILD, StartMode
from spiffctl.lease.stores import Grant, LeaseLost, Store, StoreOutage, StoreRefusal, open_store
from spiffctl.lease.timing import Timings
from spiffctl.probes import one_line
from spiffctl.roles import STOP_GRACE, Role
from spiffctl.util import procfs, procs
from spiffctl.util.errors import DEBUG_VAR, SOFTWARE, ConfigError, SpiffctlError, internal_error
from spiffctl.wait import Say as Log

EPOCH_VAR = "SPIFFCTL_LEASE_EPOCH"
# Wake up at least this often: select() sleeps on CLOCK_MONOTONIC, which stops while the host is
# suspended, while every deadline is on CLOCK_BOOTTIME (see spiffctl.lease.clock).
MAX_SLEEP = 0.5
WATCHDOG_EXIT_WAIT = 5.0  # the watchdog exits right after its last report; SIGKILL it after this
# Isolated and without site (-S: no .pth files, a smaller resident process); it imports the
# standard library and spiffctl, found where this copy of spiffctl is, after the standard library.
WATCHDOG = (
    sys.executable,
    "-I",
    "-S",
    "-c",
    f"import sys; sys.path.append({str(Path(__file__).resolve().parents[2])!r}); "
    "from spiffctl.lease.watchdog import main; sys.exit(main(sys.argv[1:]))",
)


def state_path(env: Mapping[str, str] | None = None) -> Path:
    return state.run_dir(env) / state.BACKGROUND_FILE


def lease_for_role(settings: Settings, role: Role) -> LeaseConfig:
    """The lease this role will run under; :class:`ConfigError` when it cannot work.

    ``run`` calls this before waiting for the database, so a bad lock setting or TTL is reported at
    once (78) rather than after the wait.
    """
    config = lease_config(settings)
    if config.enabled and config.url is None:
        raise ConfigError(
            f"{LOCK_URL} is not set, no Redis broker is configured and the database settings are unusable, "
            f"so there is nowhere to keep the {role.name} lease: fix the database settings (spiffctl doctor), "
            f"or set {LOCK_URL}, or {LOCK}=off if exactly one {role.name} replica runs"
        )
    return config


def run_singleton(
    settings: Settings,
    config: LeaseConfig,
    role: Role,
    script: Path,
    env: Mapping[str, str],
    *,
    say: Log,
    start: StartMode | None = None,
) -> None:
    """Run ``script`` as the only one across replicas; returns only when the lease is off (then exec it)."""
    if not config.enabled:
        if not settings.env.get(LOCK_OFF_EXPLAINED):
            say(
                f"warning: {LOCK}=off: the {role.name} role runs without a lease; run exactly one replica of it, "
                "or several schedulers will run at once"
            )
        _write_state(settings.env, mode="unleased", child_pid=os.getpid(), interval=None)
        return
    if start is not None and start.fallback:
        say(f"warning: {start.why}")
    Guard(settings, config, script, env, say=say, start=start).run()


def _write_state(env: Mapping[str, str], **fields: object) -> None:
    pid = os.getpid()
    data: dict[str, object] = {"pid": pid, "start": procfs.start_time(pid), "child_pid": None, "epoch": None}
    data.update({"holder": None, "store": None, **fields})
    data["updated"] = time.time()
    try:
        state.write_json(state_path(env), data)
    except (OSError, ConfigError):
        pass  # a read-only run dir must not stop the scheduler; healthcheck then reports it


def _warm_fields(action: WriteState) -> dict[str, object]:
    """``warm``: "loading" or "warm" while a warm child waits (null otherwise), ``warm_since`` in wall time."""
    if action.warm is None or action.warm_since is None:
        return {"warm": None, "warm_since": None}
    return {"warm": action.warm, "warm_since": round(time.time() - (clock.now() - action.warm_since), 3)}


def _reap_orphans() -> None:
    try:
        os.waitpid(-1, os.WNOHANG)  # as PID 1 we inherit the orphans; reap them
    except ChildProcessError:
        pass


def _wait_group_gone(pgid: int, limit: float = procs.GROUP_GONE_WAIT) -> bool:
    return procs.wait_group_gone(pgid, limit, reap=_reap_orphans, clock=clock.now)


class Guard:
    def __init__(
        self,
        settings: Settings,
        config: LeaseConfig,
        script: Path,
        env: Mapping[str, str],
        *,
        say: Log,
        store: Store | None = None,
        start: StartMode | None = None,
    ) -> None:
        self.settings = settings
        self.script = script
        self.env = dict(env)
        self._log = say
        self.timings = Timings(config.ttl, stop_grace=STOP_GRACE)
        self.store = store if store is not None else open_store(config, self.timings)
        names = Names(
            script=script.name,
            script_path=str(script),
            store=f"{self.store.where} ({config.source})",
            store_kind=self.store.kind,
            config=f"{config.source} ({config.display})",
            fix=f"check {config.source}",
            key=config.key,
            python=str(start.python) if start is not None else "",
        )
        self.start = start
        self.machine = Machine(self.timings, names, warm=start is not None and start.warm)
        self.signals: list[int] = []  # appended by the handler, fed to the machine in order
        self.signals_fed = 0
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)
        self.watchdog: subprocess.Popen[bytes] | None = None
        self.control: int | None = None
        self.report: int | None = None
        self.reader = messages.Reader(messages.REPORTS)
        self.child_pid: int | None = None  # as reported by the watchdog: our own record for a bug's fence
        self.exit: Exit | None = None
        self.where = f"the lease lives in {names.store}, TTL {config.ttl:g} s"
        self.store_name, self.ttl = names.store, config.ttl
        self.last_event: dict[str, object] | None = None  # for the state file: `status --json` shows it

    def say(self, message: str, event: str | None = None, fields: dict[str, object] | None = None) -> None:
        text = self.settings.redactor(f"lease: {message}")
        if event is not None:
            text = lease_event(
                text, event, fields or {}, store=self.store_name, ttl=self.ttl, redact=self.settings.redactor
            )
            self.last_event = last_event(text)
        self._log(text)

    def redact(self, text: str) -> str:
        return one_line(self.settings.redactor(text))

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> NoReturn:
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.say(self.where)  # which store, once: an operator without Redis learns it here
        try:
            self._loop()
        except Exception as e:
            self._internal_error(e)
        self._close_watchdog()
        self._close_store()
        assert self.exit is not None
        if self.exit.error is not None:
            raise SpiffctlError(self.redact(self.exit.error), self.exit.code)
        sys.exit(self.exit.code)

    def _close_store(self) -> None:
        # After the script is gone: a store may keep its proof of release until it closes.
        try:
            self.store.close()
        except Exception:
            pass  # the process exits next, which closes whatever is left

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.signals.append(signum)

    def _loop(self) -> None:
        events: deque[Event] = deque([Tick()])
        while True:
            while events:
                for action in self.machine.step(events.popleft(), clock.now()):
                    if isinstance(action, Exit):
                        self.exit = action
                        return
                    answer = self._perform(action)
                    if answer is not None:
                        events.appendleft(answer)  # an answer is the machine's next event, before anything else
            events.extend(self._wait())

    def _wait(self) -> list[Event]:
        """Sleep until the machine's wakeup, a report or a signal; what happened, as events."""
        if len(self.signals) == self.signals_fed:
            wakeup = self.machine.wakeup()
            timeout = MAX_SLEEP if wakeup is None else min(MAX_SLEEP, max(0.0, wakeup - clock.now()))
            fds = [self.wake_r] if self.report is None else [self.wake_r, self.report]
            ready, _, _ = select.select(fds, [], [], timeout)
        else:
            ready = []
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass
        events: list[Event] = []
        if self.report is not None and self.report in ready:
            events += self._read_reports()
        fresh, self.signals_fed = self.signals[self.signals_fed :], len(self.signals)
        events += [Signal(signum) for signum in fresh]
        events.append(Tick())
        return events

    def _read_reports(self) -> list[Event]:
        assert self.report is not None
        data = os.read(self.report, 4096)
        if not data:
            self._close_watchdog()
            return [WatchdogGone()]
        reports: list[Event] = []
        for report in self.reader.feed(data):
            assert isinstance(report, messages.REPORTS)  # the reader decodes nothing else
            if isinstance(report, Started):
                self.child_pid = report.pid
            elif isinstance(report, (Exited, Failed)):
                self._close_watchdog()  # its last word: it exits right after
            reports.append(report)
        return reports

    # -- actions ----------------------------------------------------------------------------

    def _perform(self, action: Action) -> Event | None:
        """Do what the machine asked; the answer when the action is a question to the world."""
        match action:
            case Say(text=text, event=event, fields=fields):
                self.say(text, event, dict(fields))
            case WriteState():
                self._declare_wait(action)
                _write_state(
                    self.settings.env,
                    mode=action.mode,
                    epoch=action.epoch,
                    child_pid=action.child_pid,
                    holder=action.holder,
                    store=action.store_ok,
                    interval=action.interval,
                    last_event=self.last_event,
                    **_warm_fields(action),
                )
            case CheckStore():
                return self._ask(lambda: Checked(self.store.refusal()))
            case Acquire():
                return self._ask(self._acquire)
            case Renew():
                return self._ask(self._renew)
            case Release():
                try:
                    return Released(self.store.release())
                except (StoreOutage, StoreRefusal) as e:
                    return Released(False, self.redact(str(e)))
            case StartChild():
                args = ["--fence", repr(action.fence), "--term-grace", repr(action.term_grace)]
                self._spawn(args, [str(self.script)], {**self.env, EPOCH_VAR: str(action.epoch)})
            case StartWarm():
                assert self.start is not None
                args = ["--warm", "--term-grace", repr(action.term_grace)]
                self._spawn(args, [str(self.start.python), str(WARM_CHILD)], self.env)
            case Fence() | Stop() | Go():
                self._send(action)
            case KillGroup(pgid=pgid, wait=wait):
                procs.signal_group(pgid, signal.SIGKILL)
                if wait:
                    return GroupKilled(_wait_group_gone(pgid))
            case Exit():
                raise AssertionError("Exit is handled by the loop")
        return None

    def _ask(self, call: Callable[[], Event]) -> Event:
        try:
            return call()
        except StoreOutage as e:
            return StoreDown(self.redact(str(e)))
        except StoreRefusal as e:
            return StoreRefused(self.redact(str(e)))

    def _acquire(self) -> Event:
        result = self.store.try_acquire()
        if isinstance(result, Grant):
            return Acquired(result.epoch, result.valid_until, result.proven, result.why)
        return HeldBy(result.describe())

    def _renew(self) -> Event:
        result = self.store.renew()
        if isinstance(result, LeaseLost):
            return Lost(result.reason)
        return Renewed(result)

    def _spawn(self, args: list[str], command: list[str], env: Mapping[str, str]) -> None:
        control_r, control_w = os.pipe()
        report_r, report_w = os.pipe()
        cmd = [
            *WATCHDOG,
            "--control",
            str(control_r),
            "--report",
            str(report_w),
            *args,
            "--cwd",
            str(self.settings.backend_dir),
            "--",
            *command,
        ]
        try:
            self.watchdog = subprocess.Popen(cmd, env=env, pass_fds=(control_r, report_w), start_new_session=True)
        finally:
            os.close(control_r)
            os.close(report_w)
        self.control, self.report = control_w, report_r
        self.reader = messages.Reader(messages.REPORTS)

    def _send(self, message: Fence | Stop | Go) -> None:
        if self.control is None:
            return
        try:
            os.write(self.control, messages.encode(message))
        except OSError:
            pass  # the watchdog is gone; the report pipe's end says so

    def _declare_wait(self, action: WriteState) -> None:
        """A deliberate wait before the script starts is declared as `run`'s waits are, so
        `status` (WAITING) and `healthcheck` (starting) read it from the same record."""
        if action.starts_at is None:
            state.done_waiting(self.settings.env)
        else:
            seconds = max(action.starts_at - clock.now(), 0.0)
            state.set_waiting(action.waits_for or "the first start", self.settings.env, seconds=seconds)

    def _close_watchdog(self) -> None:
        """Close both pipes (a live watchdog then stops the script) and reap the watchdog."""
        for fd in (self.control, self.report):
            if fd is not None:
                os.close(fd)
        self.control = self.report = None
        self.child_pid = None
        proc, self.watchdog = self.watchdog, None
        if proc is None:
            return
        try:
            proc.wait(timeout=WATCHDOG_EXIT_WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    # -- bugs -------------------------------------------------------------------------------

    def _internal_error(self, error: Exception) -> NoReturn:
        """Fence the script, then leave with exit 70 and one redacted line (or the traceback when debugging)."""
        detail = self.redact(f"{type(error).__name__}: {error}")
        message = internal_error(detail)
        try:
            for action in self.machine.step(Bug(detail), clock.now()):
                if isinstance(action, (Stop, KillGroup)):
                    self._perform(action)
                elif isinstance(action, Exit) and action.error:
                    message = self.redact(action.error)
        finally:
            # Whatever failed above, our own record of the group still gets killed.
            if self.child_pid is not None:
                procs.signal_group(self.child_pid, signal.SIGKILL)
                _wait_group_gone(self.child_pid)
            self._close_watchdog()
        if self.settings.env.get(DEBUG_VAR):
            raise error
        raise SpiffctlError(message, SOFTWARE)
