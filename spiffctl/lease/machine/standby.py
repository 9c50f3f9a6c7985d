"""Standby: no lease. Check the store once, then poll it; a warm child may load meanwhile."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from spiffctl.lease.machine import waiting, warmchild
from spiffctl.lease.machine.common import (
    Common,
    Done,
    Lease,
    Setup,
    Watched,
    finish,
    holder_state,
    signalled,
    standby_state,
    stopped_on_standby,
)
from spiffctl.lease.machine.io import (
    Acquire,
    Acquired,
    Action,
    Checked,
    CheckStore,
    Event,
    HeldBy,
    Say,
    Signal,
    StoreDown,
    StoreRefused,
    Tick,
)
from spiffctl.lease.machine.warmchild import WarmChild
from spiffctl.util.errors import CONFIG, UNAVAILABLE

if TYPE_CHECKING:
    from spiffctl.lease.machine.common import State


@dataclass(frozen=True)
class Standby:
    common: Common
    warm: WarmChild | None = None
    next_poll: float = 0.0
    said_holder: str | None = None  # the holder last named, so that it is named once
    said_down: bool = False  # the store's outage was said

    @property
    def watched(self) -> Watched:
        return warmchild.watched(self.warm)


def enter(setup: Setup, common: Common, warm: WarmChild | None, now: float, out: list[Action]) -> Standby | Done:
    """Back to standby (a signal received meanwhile ends it); the first poll is due at once."""
    if common.stop_signal is not None:
        return stopped_on_standby(common, warmchild.watched(warm), out)
    return Standby(common, warm, next_poll=now)


def step(setup: Setup, s: Standby, event: Event, now: float, out: list[Action]) -> State:
    match event:
        case Tick():
            return s
        case Signal(signum=signum):
            return stopped_on_standby(signalled(s.common, signum), s.watched, out)
        case Checked(problem=problem):
            common = replace(s.common, store_ok=True, checked=problem is None)
            if problem is not None:
                return finish(common, s.watched, out, CONFIG, f"{setup.names.config}: {problem}")
            return replace(s, common=common)
        case Acquired():
            return _acquired(setup, s, event, now, out)
        case HeldBy(who=who):
            return _held_by(setup, s, who, now, out)
        case StoreDown(detail=detail) | StoreRefused(detail=detail):
            return _failed(setup, s, detail, isinstance(event, StoreRefused), now, out)
    common, warm = warmchild.report(setup, s.common, s.warm, event, now, out)
    return replace(s, common=common, warm=warm)


def advance(setup: Setup, s: Standby, now: float, out: list[Action]) -> Standby:
    if s.common.warm and s.warm is None and now >= s.common.next_warm:
        s = replace(s, warm=warmchild.warm_up(setup, now, out))
    if now >= s.next_poll:
        out.append(Acquire() if s.common.checked else CheckStore())
    return s


def wakeup(s: Standby) -> float:
    if s.common.warm and s.warm is None:
        return min(s.next_poll, s.common.next_warm)
    return s.next_poll


def _polled(setup: Setup, s: Standby, holder: str | None, now: float, out: list[Action]) -> Standby:
    out.append(standby_state(setup, s.common, holder, warmchild.declared(s.warm)))
    return replace(s, next_poll=now + setup.t.poll)


def _held_by(setup: Setup, s: Standby, who: str, now: float, out: list[Action]) -> Standby:
    """Someone else holds it: say so once per holder, poll again."""
    s = replace(s, common=replace(s.common, store_ok=True), said_down=False)
    if s.said_holder != who:
        s = replace(s, said_holder=who)
        out.append(
            Say(
                f"standby: the Background lease is held by {who}; taking over when it ends "
                f"(key {setup.names.key}, ttl {setup.t.ttl:g} s)",
                "standby",
                (("holder", who),),
            )
        )
    return _polled(setup, s, who, now, out)


def _failed(setup: Setup, s: Standby, detail: str, refused: bool, now: float, out: list[Action]) -> State:
    """A refusal ends a standby (69); an outage is said once and polled through."""
    s = replace(s, common=replace(s.common, store_ok=False, checked=False))  # it may come back as another server
    if refused:
        names = setup.names
        return finish(s.common, s.watched, out, UNAVAILABLE, f"lease: {names.store} refused us: {detail}; {names.fix}")
    if not s.said_down:
        s = replace(s, said_down=True)
        text = f"standby: {setup.names.store} is unreachable ({detail}); retrying every {setup.t.poll:g} s"
        out.append(Say(text, "standby", (("holder", None), ("error", detail))))
    return _polled(setup, s, None, now, out)


def _acquired(setup: Setup, s: Standby, event: Acquired, now: float, out: list[Action]) -> State:
    common = replace(s.common, store_ok=True)
    lease = Lease(event.epoch, event.valid_until, next_renew=now + setup.t.renew_every)
    pid = s.warm.pid if s.warm is not None else None
    out.append(holder_state(setup, common, event.epoch, pid, warmchild.declared(s.warm)))
    fields = (("epoch", event.epoch), ("proven", event.proven))
    if event.proven:
        text = f"acquired the lease, epoch {event.epoch} ({event.why}); starting {setup.what(common)}"
        out.append(Say(text, "acquired", fields))
        return waiting.start(setup, common, lease, s.warm, now, out)
    wait = setup.t.unproven_wait
    out.append(
        Say(
            f"acquired the lease, epoch {event.epoch}, but {event.why}: waiting {wait:.1f} s before starting "
            f"{setup.what(common)} so that a holder which lost the lease has stopped",
            "acquired",
            fields,
        )
    )
    common = replace(common, waits_for=f"the safe first start of {setup.names.script}, {event.why}")
    return waiting.wait(setup, common, lease, s.warm, now + wait, out)
