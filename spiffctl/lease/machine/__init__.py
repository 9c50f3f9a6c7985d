"""The lease holder as a pure state machine: events in, actions out, time passed in, no I/O.

:meth:`Machine.step` takes one event and the current time (on :mod:`spiffctl.lease.clock`) and
returns the actions to perform, in order; :meth:`Machine.wakeup` says when it next needs a
:class:`Tick`. The shell (:mod:`spiffctl.lease.guard`) owns every pipe, process, signal and store
call: it performs the actions and turns what happens into events. A store call is an action
(:class:`Acquire`, :class:`Renew`, ...) whose answer comes back as the next event; while one is
outstanding the machine waits for it and starts nothing else. Nothing here knows which store
holds the lease.

One module per phase, as raft's ``stepLeader``/``stepFollower``: each holds one frozen state
object and ``step`` (an event), ``advance`` (time passed) and ``wakeup``; a transition returns the
next phase's object. :mod:`~.standby` (no lease), :mod:`~.waiting` (held, no child may run yet),
:mod:`~.supervising` (held, an armed child: starting, running, or orphaned by its watchdog),
:mod:`~.releasing` (the child is gone), and ``Done``. A warm child not told to go
(:mod:`~.warmchild`: loading, warm, dying) rides along outside supervising. Events and actions
are in :mod:`~.io`. The diagram: docs/lease.md, "Inside".

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

from enum import Enum
from typing import TYPE_CHECKING

from spiffctl.lease.machine import releasing, standby, supervising, waiting
from spiffctl.lease.machine.common import Common, Done, Setup, bug
from spiffctl.lease.machine.io import (
    ALL_ANSWERS,
    ANSWERS,
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
    Names,
    ProtocolViolation,
    Release,
    Released,
    Renew,
    Renewed,
    Request,
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
from spiffctl.lease.timing import Timings

if TYPE_CHECKING:
    from spiffctl.lease.machine.common import State

__all__ = [
    "Acquire",
    "Acquired",
    "Action",
    "Bug",
    "CheckStore",
    "Checked",
    "Event",
    "Exit",
    "GroupKilled",
    "HeldBy",
    "KillGroup",
    "Lost",
    "Machine",
    "Names",
    "Phase",
    "ProtocolViolation",
    "Release",
    "Released",
    "Renew",
    "Renewed",
    "Say",
    "Signal",
    "StartChild",
    "StartWarm",
    "StoreDown",
    "StoreRefused",
    "Tick",
    "WatchdogGone",
    "WriteState",
]


class Phase(Enum):
    STANDBY = "standby"  # no lease: polling the store
    WAITING = "waiting"  # lease held, no child: the previous lease's end is not proven yet
    SUPERVISING = "supervising"  # lease held, watchdog started: child starting, running or stopping
    RELEASING = "releasing"  # the child is gone; releasing, then exit or back to standby
    DONE = "done"  # Exit was issued; nothing more happens


class Machine:
    """Holds the current phase's state and the request outstanding; each phase's module decides."""

    def __init__(self, timings: Timings, names: Names, *, warm: bool = False) -> None:
        self._setup = Setup(timings, names)
        self._state: State = standby.Standby(Common(warm=warm))
        self._pending: Request | None = None  # the store call (or wait) whose answer is due

    @property
    def phase(self) -> Phase:
        match self._state:
            case standby.Standby():
                return Phase.STANDBY
            case waiting.Waiting():
                return Phase.WAITING
            case supervising.Supervising():
                return Phase.SUPERVISING
            case releasing.Releasing():
                return Phase.RELEASING
        return Phase.DONE

    def step(self, event: Event, now: float) -> list[Action]:
        if isinstance(self._state, Done):
            return []
        out: list[Action] = []
        if isinstance(event, Bug):
            self._state = bug(self._state.common, self._state.watched, event.detail, out)
            self._pending = None
            return out
        self._answer(event)
        self._state = self._step(event, now, out)
        self._pending = self._asked(out)
        if self._pending is None:
            later: list[Action] = []
            self._state = self._advance(now, later)
            self._pending = self._asked(later)
            out += later
        return out

    def wakeup(self) -> float | None:
        """When the machine next needs a :class:`Tick` (None: only events move it)."""
        if self._pending is not None:
            return None
        match self._state:
            case standby.Standby():
                return standby.wakeup(self._state)
            case waiting.Waiting():
                return waiting.wakeup(self._state)
            case supervising.Supervising():
                return supervising.wakeup(self._setup, self._state)
        return None

    def _answer(self, event: Event) -> None:
        """While a request is outstanding only its answer may arrive: the shell delivers it at once."""
        pending = self._pending
        if pending is not None and not isinstance(event, ANSWERS[type(pending)]):
            raise ProtocolViolation(f"{type(event).__name__} while waiting for {type(pending).__name__}")
        if pending is None and isinstance(event, ALL_ANSWERS):
            raise ProtocolViolation(f"{type(event).__name__} without a request")
        self._pending = None

    def _asked(self, out: list[Action]) -> Request | None:
        if isinstance(self._state, Done):
            return None
        for action in reversed(out):
            if isinstance(action, (CheckStore, Acquire, Renew, Release)) or (
                isinstance(action, KillGroup) and action.wait
            ):
                return action
        return None

    def _step(self, event: Event, now: float, out: list[Action]) -> State:
        setup, state = self._setup, self._state
        match state:
            case standby.Standby():
                return standby.step(setup, state, event, now, out)
            case waiting.Waiting():
                return waiting.step(setup, state, event, now, out)
            case supervising.Supervising():
                return supervising.step(setup, state, event, now, out)
            case releasing.Releasing():
                return releasing.step(setup, state, event, now, out)
        return state

    def _advance(self, now: float, out: list[Action]) -> State:
        setup, state = self._setup, self._state
        match state:
            case standby.Standby():
                return standby.advance(setup, state, now, out)
            case waiting.Waiting():
                return waiting.advance(setup, state, now, out)
            case supervising.Supervising():
                return supervising.advance(setup, state, now, out)
        return state
