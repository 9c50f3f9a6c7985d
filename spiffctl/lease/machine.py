"""The lease holder as a pure state machine: events in, actions out, time passed in, no I/O.

:meth:`Machine.step` takes one event and the current time (on :mod:`spiffctl.lease.clock`) and
returns the actions to perform, in order; :meth:`Machine.wakeup` says when it next needs a
:class:`Tick`. The shell (:mod:`spiffctl.lease.guard`) owns every pipe, process, signal and store
call: it performs the actions and turns what happens into events. A store call is an action
(:class:`Acquire`, :class:`Renew`, ...) whose answer comes back as the next event; while one is
outstanding the machine waits for it and starts nothing else. Nothing here knows which store
holds the lease.

Phases (``Phase``) and what moves between them::

                 Signal -> Exit 0         StoreRefused -> Exit 69      Checked(problem) -> Exit 78
    STANDBY ──Acquired(proven)──────────────────────────────────────────┐
       │  ▲  ──Acquired(not proven)──> WAITING ──start_at reached──────>│ StartChild
       │  │                            │ Lost / deadline passed ─> STANDBY
       │  │                            │ Signal ─> Release ─> Exit 0
       │  │                            ▼                               ▼
       │  └──── Lost + Exited ──────────────────────────────────── SUPERVISING
       │  └──── Exited(fenced) ─> Release ────────────────────────   │ Renewed ─> Fence
       │                                                             │ Lost ─> Stop(term_grace)
       │                                                             │ Signal ─> Stop(stop_grace), 2nd: Stop(0)
       │                                                             │ deadline + belt, child alive ─> KillGroup
       │                                                             │ WatchdogGone ─> KillGroup, wait until gone
       │                                                             │ Failed ─> Release ─> Exit 127/126
       │                                                             ▼
       └──────────────────────── Exited(own) or stopping ─> Release ─> Exit(child's code)
    any phase: Bug ─> Stop(0) + KillGroup(child) ─> Exit 70

Guarantees (checked after every step by tests/test_machine.py over random histories):

* never two children: :class:`StartChild` only when no watchdog is running;
* a fence deadline sent to the watchdog is never later than the lease's local deadline, and
  once renewal stops succeeding the child is stopped before that deadline (by the watchdog; the
  machine issues :class:`KillGroup` itself when the deadline plus :data:`~spiffctl.lease.timing.BELT`
  passes and the child is still reported alive);
* :class:`Release` only after the child has been reported gone (or before it ever started);
* the exit code is the child's (128+N for signal N) when it was stopped or exited by itself;
  a standby never starts a child; an internal error fences the child before exit 70.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from spiffctl.lease.messages import Exited, Failed, Fence, Go, How, Loaded, LoadFailed, Started, Stop
from spiffctl.lease.timing import Timings
from spiffctl.util.errors import SOFTWARE, internal_error

UNAVAILABLE = 69  # EX_UNAVAILABLE: the store refused us
CONFIG = 78  # EX_CONFIG: the store cannot keep a lease safely
KILLED = 128 + 9  # a script whose group we had to SIGKILL ourselves
BACK = "back to standby"
WARM_BACKOFF_MAX = 60.0  # seconds between two attempts to load a warm child, at most


# --- events ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tick:
    """Time passed; nothing else happened."""


@dataclass(frozen=True)
class Signal:
    """SIGTERM or SIGINT reached spiffctl: stop (a second one: stop at once)."""

    signum: int


@dataclass(frozen=True)
class Checked:
    """Answer to :class:`CheckStore`: ``problem`` is why the store cannot keep a lease safely."""

    problem: str | None


@dataclass(frozen=True)
class Acquired:
    """Answer to :class:`Acquire`: the lease is ours."""

    epoch: int
    valid_until: float
    proven: bool  # the previous lease certainly ended
    why: str


@dataclass(frozen=True)
class HeldBy:
    """Answer to :class:`Acquire`: someone else holds it (``who`` describes them)."""

    who: str


@dataclass(frozen=True)
class Renewed:
    """Answer to :class:`Renew`: the new local deadline."""

    valid_until: float


@dataclass(frozen=True)
class Lost:
    """Answer to :class:`Renew`: the lease is gone or someone else's."""

    reason: str


@dataclass(frozen=True)
class StoreDown:
    """Answer to any store call: the store did not answer (an outage)."""

    detail: str


@dataclass(frozen=True)
class StoreRefused:
    """Answer to any store call: the store said no (wrong password, no such database)."""

    detail: str


@dataclass(frozen=True)
class Released:
    """Answer to :class:`Release`: True when it was still ours; ``failure`` when the call failed."""

    released: bool
    failure: str | None = None


@dataclass(frozen=True)
class WatchdogGone:
    """The watchdog's report pipe closed before it reported the script's end."""


@dataclass(frozen=True)
class GroupKilled:
    """Answer to :class:`KillGroup` with ``wait``: whether the group is gone now."""

    gone: bool


@dataclass(frozen=True)
class Bug:
    """Something raised that is neither an outage nor a refusal; ``detail`` is one redacted line."""

    detail: str


Event = (
    Tick
    | Signal
    | Checked
    | Acquired
    | HeldBy
    | Renewed
    | Lost
    | StoreDown
    | StoreRefused
    | Released
    | Started
    | Exited
    | Failed
    | Loaded
    | LoadFailed
    | WatchdogGone
    | GroupKilled
    | Bug
)


# --- actions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Say:
    text: str
    event: str | None = None  # a lease transition (docs/logs.md), with its fields
    fields: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True)
class WriteState:
    """Rewrite the runner's state file (read by ``spiffctl healthcheck --role background``)."""

    mode: str  # holder | standby
    epoch: int | None
    child_pid: int | None
    holder: str | None  # standby: who holds the lease
    store_ok: bool | None  # the last store call got an answer
    interval: float  # seconds until the next rewrite
    # Holding but deliberately not started yet: when the script starts (this clock) and why it waits.
    starts_at: float | None = None
    waits_for: str | None = None
    warm: str | None = None  # a warm child not told to go: "loading" or "warm" (loaded); else None
    warm_since: float | None = None  # since when (machine clock), for the state file


@dataclass(frozen=True)
class CheckStore:
    """Ask the store whether it can keep a lease safely; answer: :class:`Checked`."""


@dataclass(frozen=True)
class Acquire:
    """Answer: :class:`Acquired` or :class:`HeldBy` (or StoreDown / StoreRefused)."""


@dataclass(frozen=True)
class Renew:
    """Answer: :class:`Renewed` or :class:`Lost` (or StoreDown / StoreRefused)."""


@dataclass(frozen=True)
class Release:
    """Answer: :class:`Released`."""


@dataclass(frozen=True)
class StartChild:
    """Start the watchdog, which starts the script with ``SPIFFCTL_LEASE_EPOCH=epoch`` under ``fence``.

    Reports come back as :class:`Started`, :class:`Exited`, :class:`Failed` or :class:`WatchdogGone`.
    """

    epoch: int
    fence: float
    term_grace: float


@dataclass(frozen=True)
class StartWarm:
    """Start the watchdog with a warm child (``watchdog --warm``): it loads the app and waits for :class:`Go`.

    Not a scheduler until the machine sends ``Go``; reports come back as :class:`Started`,
    :class:`Loaded`, :class:`LoadFailed`, :class:`Exited`, :class:`Failed` or :class:`WatchdogGone`.
    """

    term_grace: float


@dataclass(frozen=True)
class KillGroup:
    """SIGKILL the script's process group; with ``wait``, answer :class:`GroupKilled` once gone or after a bound."""

    pgid: int
    wait: bool


@dataclass(frozen=True)
class Exit:
    """Leave with ``code``; ``error`` is the one line to print for a failure, None for a normal end."""

    code: int
    error: str | None = None


Action = (
    Say
    | WriteState
    | CheckStore
    | Acquire
    | Renew
    | Release
    | StartChild
    | StartWarm
    | Go
    | Fence
    | Stop
    | KillGroup
    | Exit
)
Request = CheckStore | Acquire | Renew | Release | KillGroup


_ANSWERS: dict[type, tuple[type, ...]] = {
    CheckStore: (Checked, StoreDown, StoreRefused),
    Acquire: (Acquired, HeldBy, StoreDown, StoreRefused),
    Renew: (Renewed, Lost, StoreDown, StoreRefused),
    Release: (Released,),
    KillGroup: (GroupKilled,),
}
_ALL_ANSWERS = tuple({t for ts in _ANSWERS.values() for t in ts})


class ProtocolViolation(Exception):
    """An event the machine cannot receive now (an answer nobody asked for): a bug in the shell."""


@dataclass(frozen=True)
class Names:
    """How messages name things: plain text from the shell, so the machine stays store-agnostic."""

    script: str  # the script's file name
    script_path: str  # its full path, for the error when it cannot be executed
    store: str  # "Redis redis://cache:6379/0 (SPIFFCTL_LOCK_URL)"
    store_kind: str  # "Redis"
    config: str  # what to blame for a store that cannot keep a lease: "SPIFFCTL_LOCK_URL (redis://...)"
    fix: str  # what to check when the store refuses us: "check SPIFFCTL_LOCK_URL"
    key: str  # the lease key
    python: str = "the backend's python"  # the warm child's interpreter


class Phase(Enum):
    STANDBY = "standby"  # no lease: polling the store
    WAITING = "waiting"  # lease held, no child: the previous lease's end is not proven yet
    SUPERVISING = "supervising"  # lease held, watchdog started: child starting, running or stopping
    RELEASING = "releasing"  # the child is gone; releasing, then exit or back to standby
    DONE = "done"  # Exit was issued; nothing more happens


@dataclass(frozen=True)
class _Then:
    """What to do once a release was answered: exit with ``code`` (None: back to standby)."""

    say: str | None
    code: int | None = None
    error: str | None = None
    event: str | None = None  # the transition said with it; default: released (handed-off on a signal)
    pause: float = 0.0  # back on standby: poll the store again only after this long


class Machine:
    def __init__(self, timings: Timings, names: Names, *, warm: bool = False) -> None:
        self.t = timings
        self.names = names
        # Warm start: a child loads the app ahead of the lease and starts the scheduler on Go.
        # Turned off for good when the warm child reports that it cannot work (fall back to the script).
        self.warm = warm
        self.phase = Phase.STANDBY
        self.pending: Request | None = None  # the store call (or wait) whose answer is due
        self.store_ok: bool | None = None
        self.stop_signal: int | None = None
        self.stop_count = 0
        # standby
        self.next_poll = 0.0
        self.checked = False  # the store's refusal check passed since it last failed
        self.said_holder: str | None = None
        self.said_down = False
        # holding the lease
        self.epoch: int | None = None
        self.valid_until = 0.0
        self.next_renew = 0.0
        self.failing_since: float | None = None
        self.last_failure = ""
        self.start_at = 0.0
        self.waits_for = ""
        self.lost: str | None = None
        # the child
        self.watchdog = False  # a watchdog was started and has not reported its end
        self.child: int | None = None  # the script's pid (= its group) once reported
        self.belted = False
        self.stop_sent = 0  # signals already turned into a Stop
        self.next_state = 0.0
        self.then: _Then | None = None
        # The child may run the scheduler: the script, or a warm child once told to go. Only in
        # SUPERVISING; every guarantee about "the child" is about an armed one.
        self.armed = False
        self.child_warm = False  # the watchdog runs a warm child (armed or not)
        self.warm_started = 0.0  # when the current warm child was started
        self.loaded_at: float | None = None  # when it reported the app loaded
        self.dying = False  # it reported that it cannot load: its end is coming
        self.warm_failures = 0
        self.next_warm = 0.0  # no warm child is started before this (backoff after failures)

    # -- the interface ----------------------------------------------------------------------

    def step(self, event: Event, now: float) -> list[Action]:
        if self.phase is Phase.DONE:
            return []
        out: list[Action] = []
        if isinstance(event, Bug):
            self._bug(event.detail, out)
            return out
        self._answer(event)
        self._handle(event, now, out)
        if self.pending is None:
            self._advance(now, out)
        return out

    def wakeup(self) -> float | None:
        """When the machine next needs a :class:`Tick` (None: only events move it)."""
        if self.pending is not None or self.phase in (Phase.DONE, Phase.RELEASING):
            return None
        if self.phase is Phase.STANDBY:
            if self.warm and not self.watchdog:
                return min(self.next_poll, self.next_warm)
            return self.next_poll
        if self.phase is Phase.WAITING:
            return min(self.next_renew, self.start_at, self.valid_until)
        times = [self.next_state]
        if self.lost is None:
            times.append(self.next_renew)
        if self.child is not None and not self.belted:
            times.append(self.valid_until + self.t.belt)
        return min(times)

    # -- events -----------------------------------------------------------------------------

    def _answer(self, event: Event) -> None:
        """While a request is outstanding only its answer may arrive: the shell delivers it at once."""
        answers = _ANSWERS.get(type(self.pending), ()) if self.pending is not None else ()
        if self.pending is not None and not isinstance(event, answers):
            raise ProtocolViolation(f"{type(event).__name__} while waiting for {type(self.pending).__name__}")
        if self.pending is None and isinstance(event, _ALL_ANSWERS):
            raise ProtocolViolation(f"{type(event).__name__} without a request")
        self.pending = None

    def _handle(self, event: Event, now: float, out: list[Action]) -> None:
        match event:
            case Tick():
                pass
            case Signal(signum=signum):
                self._signal(signum, out)
            case Checked(problem=problem):
                self._checked(problem, out)
            case Acquired():
                self._acquired(event, now, out)
            case HeldBy(who=who):
                self._held_by(who, now, out)
            case StoreDown(detail=detail) | StoreRefused(detail=detail) if self.phase is Phase.STANDBY:
                self._standby_failed(detail, isinstance(event, StoreRefused), now, out)
            case StoreDown(detail=detail) | StoreRefused(detail=detail):
                self._renew_failed(detail, now, out)
            case Renewed(valid_until=valid_until):
                self._renewed(valid_until, now, out)
            case Lost(reason=reason):
                self._lost(reason, now, out)
            case Released():
                self._released(event, now, out)
            case Started(pid=pid):
                self._require(event)
                self._started(pid, now, out)
            case Loaded():
                self._require(event, warm=True)
                self._loaded(now, out)
            case LoadFailed(unusable=unusable, reason=reason):
                self._require(event, warm=True)
                self._load_failed(unusable, reason, now, out)
            case Exited(code=code, how=how) if not self.armed:
                self._require(event)
                self._warm_gone(f"the warm child exited with code {code}", now, out)
            case Exited(code=code, how=how):
                self._require(event)
                self._child_gone(code, how, now, out)
            case Failed(code=code, reason=reason) if self.child_warm:
                self._require(event)
                self._warm_unusable(f"{self.names.python} cannot be executed: {reason}", out)
                armed = self.armed
                self.armed = False
                self._warm_gone(None, now, out)
                if armed:  # nothing ran: release, so that the script starts cleanly (here or elsewhere)
                    self._release(out, _Then(say=None))
            case Failed(code=code, reason=reason):
                self._require(event)
                self._failed(code, reason, out)
            case WatchdogGone() if not self.armed:
                self._require(event)
                if self.child is not None:
                    out.append(KillGroup(self.child, wait=False))  # not a scheduler: no need to wait
                self._warm_gone("the warm child's watchdog died", now, out)
            case WatchdogGone():
                self._require(event)
                self._watchdog_gone(out)
            case GroupKilled(gone=gone):
                self._group_killed(gone, now, out)

    def _require(self, event: Event, *, warm: bool = False) -> None:
        if not self.watchdog or (warm and not self.child_warm) or self.armed != (self.phase is Phase.SUPERVISING):
            raise ProtocolViolation(f"{type(event).__name__} in phase {self.phase.value} without a watchdog")

    # -- the warm child ---------------------------------------------------------------------

    def _warm_up(self, now: float, out: list[Action]) -> None:
        self.watchdog = True
        self.child_warm = True
        self.child = None
        self.dying = False
        self.loaded_at = None
        self.warm_started = now
        out.append(StartWarm(self.t.term_grace))

    def _loaded(self, now: float, out: list[Action]) -> None:
        self.loaded_at = now
        self.warm_failures = 0
        took = f"in {now - self.warm_started:.1f} s"
        if self.armed:
            out.append(Say(f"the app is loaded ({took}); the scheduler starts now", "warm-loaded"))
        else:
            out.append(
                Say(
                    f"warm standby: the app is loaded ({took}); the scheduler starts as soon as we hold the lease",
                    "warm-loaded",
                )
            )

    def _load_failed(self, unusable: bool, reason: str, now: float, out: list[Action]) -> None:
        self.dying = True
        if unusable:
            self._warm_unusable(reason, out)
            return
        self.warm_failures += 1
        pause = self._backoff(now)
        text = f"the warm child could not load the app: {reason}; trying again in {pause:g} s"
        out.append(Say(text, "warm-failed", (("reason", reason), ("retry_in", pause))))

    def _backoff(self, now: float) -> float:
        pause = min(self.t.poll * 2.0 ** min(self.warm_failures, 10), WARM_BACKOFF_MAX)
        self.next_warm = now + pause
        return pause

    def _warm_unusable(self, reason: str, out: list[Action]) -> None:
        if self.warm:
            self.warm = False
            text = f"warm start is not possible ({reason}); running {self.names.script_path} instead"
            out.append(Say(text, "warm-fallback", (("reason", reason),)))

    def _warm_gone(self, what: str | None, now: float, out: list[Action]) -> None:
        """An unarmed warm child ended: not a scheduler, so the lease is untouched; load another later."""
        self.watchdog = False
        self.child = None
        self.child_warm = False
        self.loaded_at = None
        if not self.dying and what is not None and self.warm:
            self.warm_failures += 1
            pause = self._backoff(now)
            out.append(
                Say(f"{what}; loading a new one in {pause:g} s", "warm-failed", (("reason", what), ("retry_in", pause)))
            )
        self.dying = False

    def _what(self) -> str:
        """What starts under the lease: the script, or the scheduler in a warm child."""
        return "the scheduler" if self.warm else self.names.script

    def _checked(self, problem: str | None, out: list[Action]) -> None:
        self.store_ok = True
        if problem is not None:
            self._exit(out, CONFIG, f"{self.names.config}: {problem}")
        else:
            self.checked = True

    def _held_by(self, who: str, now: float, out: list[Action]) -> None:
        """Someone else holds it: say so once per holder, poll again."""
        self.store_ok = True
        self.said_down = False
        if self.said_holder != who:
            self.said_holder = who
            out.append(
                Say(
                    f"standby: the Background lease is held by {who}; taking over when it ends "
                    f"(key {self.names.key}, ttl {self.t.ttl:g} s)",
                    "standby",
                    (("holder", who),),
                )
            )
        self._standby_polled(now, who, out)

    def _standby_failed(self, detail: str, refused: bool, now: float, out: list[Action]) -> None:
        """A refusal ends a standby (69); an outage is said once and polled through."""
        self.store_ok = False
        self.checked = False  # it may come back as another server
        if refused:
            self._exit(out, UNAVAILABLE, f"lease: {self.names.store} refused us: {detail}; {self.names.fix}")
            return
        if not self.said_down:
            self.said_down = True
            text = f"standby: {self.names.store} is unreachable ({detail}); retrying every {self.t.poll:g} s"
            out.append(Say(text, "standby", (("holder", None), ("error", detail))))
        self._standby_polled(now, None, out)

    def _started(self, pid: int, now: float, out: list[Action]) -> None:
        self.child = pid
        self.next_state = now
        if not self.child_warm:
            text = f"started {self.names.script} (pid {pid}, epoch {self.epoch}) under the lease"
            out.append(Say(text, "started", (("epoch", self.epoch), ("pid", pid))))
        elif not self.armed:
            out.append(Say(f"warm child (pid {pid}) is loading the app with {self.names.python}", "warm-loading"))

    def _failed(self, code: int, reason: str, out: list[Action]) -> None:
        """The script could not be executed: nothing ran, so release, then exit with the shell's code."""
        self.watchdog = False
        self.child = None
        self.armed = False
        error = f"cannot execute {self.names.script_path}: {reason} (check its #! line)"
        self._release(out, _Then(say=None, code=code, error=error))

    def _signal(self, signum: int, out: list[Action]) -> None:
        self.stop_signal = signum
        self.stop_count += 1
        if self.phase is Phase.STANDBY:
            out.append(Say(f"stopped by signal {signum} while on standby"))
            self._exit(out, 0)
        elif self.phase is Phase.WAITING:
            self._release(out, _Then(say=f"stopped by signal {signum} before {self.names.script} started", code=0))
        elif self.phase is Phase.SUPERVISING:
            self._send_stop(out)
        # RELEASING cannot see a signal: its only event is the release's answer, delivered at once.

    def _send_stop(self, out: list[Action]) -> None:
        """Turn pending signals into Stop messages: the first gives the script stop_grace, a second none."""
        if self.stop_signal is None or not self.watchdog or self.stop_sent >= min(self.stop_count, 2):
            return
        grace = self.t.stop_grace if self.stop_count == 1 else 0.0
        if self.stop_sent == 0:
            out.append(
                Say(f"signal {self.stop_signal}: stopping {self.names.script} (up to {grace:g} s), then releasing")
            )
        out.append(Stop(grace))
        self.stop_sent = self.stop_count

    def _acquired(self, event: Acquired, now: float, out: list[Action]) -> None:
        if self.phase is not Phase.STANDBY:
            raise ProtocolViolation(f"Acquired in phase {self.phase.value}")
        self.store_ok = True
        self.said_down = False
        self.epoch = event.epoch
        self.valid_until = event.valid_until
        self.next_renew = now + self.t.renew_every
        self.failing_since = None
        self.lost = None
        out.append(self._state("holder"))
        fields = (("epoch", event.epoch), ("proven", event.proven))
        if event.proven:
            text = f"acquired the lease, epoch {event.epoch} ({event.why}); starting {self._what()}"
            out.append(Say(text, "acquired", fields))
            self._start(now, out)
            return
        wait = self.t.unproven_wait
        out.append(
            Say(
                f"acquired the lease, epoch {event.epoch}, but {event.why}: waiting {wait:.1f} s before starting "
                f"{self._what()} so that a holder which lost the lease has stopped",
                "acquired",
                fields,
            )
        )
        self.phase = Phase.WAITING
        self.start_at = now + wait
        self.waits_for = f"the safe first start of {self.names.script}, {event.why}"
        out.append(self._state("holder"))

    def _renewed(self, valid_until: float, now: float, out: list[Action]) -> None:
        self.store_ok = True
        if self.failing_since is not None:
            late = round(now - self.failing_since, 1)
            text = f"renewed the lease again after {now - self.failing_since:.1f} s of failures"
            out.append(Say(text, "renewed-late", (("epoch", self.epoch), ("late", late))))
        self.failing_since = None
        self.valid_until = valid_until
        self.next_renew = now + self.t.renew_every
        if self.phase is Phase.SUPERVISING and self.watchdog:
            out.append(Fence(self.valid_until))
        else:
            out.append(self._state("holder"))

    def _renew_failed(self, detail: str, now: float, out: list[Action]) -> None:
        """Renewal got no answer, or a refusal: retry every poll; the fence acts at the deadline."""
        self.store_ok = False
        self.checked = False
        self.last_failure = detail
        if self.failing_since is None:
            self.failing_since = now
            left = max(self.valid_until - now, 0.0)
            then = (
                f"{self.names.script} will be stopped"
                if self.phase is Phase.SUPERVISING
                else "the lease will be given up"
            )
            out.append(
                Say(
                    f"cannot renew the lease at {self.names.store}: {detail}; retrying, {then} in {left:.1f} s "
                    f"unless {self.names.store_kind} answers",
                    "renew-failing",
                    (("epoch", self.epoch), ("error", detail), ("left", round(left, 1))),
                )
            )
        self.next_renew = now + self.t.poll
        if self.phase is Phase.WAITING:
            out.append(self._state("holder"))

    def _lost(self, reason: str, now: float, out: list[Action]) -> None:
        self.store_ok = True
        lost = (("epoch", self.epoch), ("reason", reason))
        if self.phase is Phase.WAITING:
            out.append(Say(f"lost the lease before starting: {reason}", "lost", lost))
            self._to_standby(now, out)
            return
        self.lost = reason
        out.append(Say(f"lost the lease: {reason}; stopping {self.names.script}", "lost", lost))
        if self.watchdog:
            out.append(Stop(self.t.term_grace))

    def _start(self, now: float, out: list[Action]) -> None:
        """Start the child, unless so little of the lease is left that the fence would hit it at once."""
        if now >= self.valid_until - self.t.term_grace:
            # Delayed (frozen, overloaded) since the last renewal. No child ran under this epoch,
            # so releasing is safe and lets a standby (or us) start cleanly.
            text = f"the lease's local deadline is too close to start {self.names.script}; {BACK}"
            self._release(out, _Then(say=text))
            return
        if self.watchdog and (self.dying or not self.warm):
            # A warm child that cannot load (or after a fallback to the script) is still ending:
            # never two children, so hold the lease without one a little longer.
            self.phase = Phase.WAITING
            self.start_at = now + self.t.poll
            return
        assert self.epoch is not None
        self.phase = Phase.SUPERVISING
        self.armed = True
        self.belted = False
        self.next_state = now + self.t.renew_every  # and at once when the child is reported started
        if not self.warm:
            self.watchdog = True
            self.child = None
            self.child_warm = False
            out.append(StartChild(self.epoch, self.valid_until, self.t.term_grace))
            return
        if not self.watchdog:
            self._warm_up(now, out)  # none loaded (it failed, or ended): a cold start, still one app start
        waited = "" if self.loaded_at is None else f", warm since {now - self.loaded_at:.1f} s"
        text = f"starting the scheduler in the warm child (epoch {self.epoch}{waited})"
        out.append(Say(text, "started", (("epoch", self.epoch), ("pid", self.child), ("warm", True))))
        out.append(Go(self.valid_until, self.epoch))

    def _child_gone(self, code: int, how: How, now: float, out: list[Action]) -> None:
        """The watchdog reported the script's whole group gone: release, then exit or back to standby."""
        self.watchdog = False
        self.child = None
        self.armed = False
        warm, self.child_warm = self.child_warm, False
        self.loaded_at = None
        self.dying = False
        script = self.names.script if not warm else "the scheduler (warm child)"
        if warm and self.stop_signal is None and how is How.OWN and self.lost is None:
            # Not the script: ours to restart. Let another replica take over while we back off.
            self.warm_failures += 1
            pause = self._backoff(now)
            self._release(out, _Then(say=f"{script} exited by itself with code {code}; {BACK}", pause=pause))
            return
        if self.stop_signal is not None or (how is How.OWN and self.lost is None):
            verb = "stopped" if self.stop_signal is not None else "exited by itself"
            self._release(out, _Then(say=f"{script} {verb} with code {code}", code=code))
            return
        if self.lost is not None:
            # Not ours any more: releasing would be a no-op, and the next holder needs no tombstone.
            text = f"{script} was fenced (code {code}) because the lease was lost: {self.lost}; {BACK}"
            out.append(Say(text, "fenced", (("epoch", self.epoch), ("code", code), ("reason", self.lost))))
            self._to_standby(now, out)
            return
        reason = (
            f"could not renew for {now - self.failing_since:.1f} s ({self.last_failure})"
            if self.failing_since is not None
            else "the local deadline passed without a successful renewal"
        )
        text = f"{script} was fenced (code {code}) because the lease was lost: {reason}; {BACK}"
        self._release(out, _Then(say=text, event="fenced"))

    def _watchdog_gone(self, out: list[Action]) -> None:
        self.watchdog = False
        if self.child is None:
            # It never reported a start: it could not be run at all, or was killed right away.
            self._exit(
                out,
                SOFTWARE,
                internal_error(
                    f"the watchdog exited before it started {self.names.script} (is spiffctl installed where "
                    "`python -I -m spiffctl.lease.watchdog` finds it?)"
                ),
            )
            return
        self._kill_and_wait(out)

    def _kill_and_wait(self, out: list[Action]) -> None:
        assert self.child is not None
        self._request(KillGroup(self.child, wait=True), out)

    def _request(self, request: Request, out: list[Action]) -> None:
        self.pending = request
        out.append(request)

    def _group_killed(self, gone: bool, now: float, out: list[Action]) -> None:
        if not gone:
            # Only a process stuck in the kernel survives SIGKILL; it runs no code meanwhile.
            # Starting another child before it is gone would break "never two children".
            out.append(Say(f"{self.names.script}'s process group {self.child} is still there after SIGKILL; waiting"))
            self._kill_and_wait(out)
            return
        out.append(Say(f"the watchdog died unexpectedly; killed {self.names.script}'s process group"))
        self._child_gone(KILLED, How.FENCED, now, out)

    def _release(self, out: list[Action], then: _Then) -> None:
        self.phase = Phase.RELEASING
        self.then = then
        self._request(Release(), out)

    def _released(self, event: Released, now: float, out: list[Action]) -> None:
        then, self.then = self.then, None
        assert then is not None
        if event.released:
            outcome = "lease released"
            self.store_ok = True
        elif event.failure is not None:
            outcome = f"could not release the lease ({event.failure}); it expires by itself"
            self.store_ok = False
        else:
            outcome = "the lease was no longer ours"
        name = then.event or ("handed-off" if self.stop_signal is not None else "released")
        fields = (("epoch", self.epoch), ("released", event.released))
        if then.code is not None:
            if then.say is not None:
                out.append(Say(f"{then.say}; {outcome}", name, (*fields, ("code", then.code))))
            self._exit(out, then.code, then.error)
            return
        if then.say is not None:
            out.append(Say(then.say, name, fields))
        if event.failure is not None:
            out.append(Say(outcome, None if then.say is not None else name, fields))
        self._to_standby(now, out)
        self.next_poll = now + then.pause

    def _to_standby(self, now: float, out: list[Action]) -> None:
        self.phase = Phase.STANDBY
        self.epoch = None
        self.valid_until = 0.0
        self.lost = None
        self.failing_since = None
        self.said_holder = None
        self.said_down = False
        self.next_poll = now
        if self.stop_signal is not None:
            out.append(Say(f"stopped by signal {self.stop_signal} while on standby"))
            self._exit(out, 0)

    def _standby_polled(self, now: float, holder: str | None, out: list[Action]) -> None:
        out.append(self._state("standby", holder=holder))
        self.next_poll = now + self.t.poll

    def _bug(self, detail: str, out: list[Action]) -> None:
        """Fence first: the watchdog kills at once, and so do we when we know the group."""
        if self.watchdog:
            out.append(Stop(0.0))
        if self.child is not None:
            out.append(KillGroup(self.child, wait=True))
        self._exit(out, SOFTWARE, internal_error(detail))

    def _exit(self, out: list[Action], code: int, error: str | None = None) -> None:
        if self.watchdog and not self.armed:
            out.append(Stop(0.0))  # a warm child that never started the scheduler: nothing to wait for
        self.phase = Phase.DONE
        self.pending = None
        out.append(Exit(code, error))

    # -- time -------------------------------------------------------------------------------

    def _advance(self, now: float, out: list[Action]) -> None:
        """Whatever is due at ``now`` with no store call outstanding."""
        if self.phase is Phase.STANDBY:
            if self.warm and not self.watchdog and now >= self.next_warm:
                self._warm_up(now, out)
            if now >= self.next_poll:
                self._request(Acquire() if self.checked else CheckStore(), out)
        elif self.phase is Phase.WAITING:
            if now >= self.valid_until:
                if self.failing_since is not None:
                    why = (
                        f"{self.names.store_kind} unreachable for {now - self.failing_since:.1f} s "
                        f"({self.last_failure})"
                    )
                else:
                    why = "the local deadline passed before a renewal was due (spiffctl was delayed)"
                out.append(
                    Say(f"lost the lease before starting: {why}", "lost", (("epoch", self.epoch), ("reason", why)))
                )
                self._to_standby(now, out)
                self._advance(now, out)  # poll at once
            elif now >= self.next_renew:
                self._request(Renew(), out)
            elif now >= self.start_at:
                self._start(now, out)
        elif self.phase is Phase.SUPERVISING:
            self._send_stop(out)
            if self.child is not None and not self.belted and now >= self.valid_until + self.t.belt:
                # The watchdog should have killed the group by now: it is frozen or gone.
                self.belted = True
                out.append(Say(f"the watchdog missed the deadline; killing {self.names.script}'s process group"))
                out.append(KillGroup(self.child, wait=False))
            if now >= self.next_state:
                out.append(self._state("holder"))
                self.next_state = now + self.t.renew_every
            if self.lost is None and now >= self.next_renew:
                self._request(Renew(), out)

    def _state(self, mode: str, *, holder: str | None = None) -> WriteState:
        interval = self.t.renew_every if mode == "holder" else self.t.poll
        child = self.child if mode == "holder" else None
        epoch = self.epoch if mode == "holder" else None
        warm: str | None = None
        since: float | None = None
        if self.watchdog and self.child_warm and not self.armed and not self.dying:
            warm, since = ("warm", self.loaded_at) if self.loaded_at is not None else ("loading", self.warm_started)
        starts_at, waits_for = (
            (self.start_at, self.waits_for) if mode == "holder" and self.phase is Phase.WAITING else (None, None)
        )
        return WriteState(
            mode,
            epoch,
            child,
            holder,
            self.store_ok,
            round(interval, 3),
            starts_at=starts_at,
            waits_for=waits_for,
            warm=warm,
            warm_since=since,
        )
