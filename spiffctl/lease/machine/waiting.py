"""Waiting: the lease is held, no child may run yet; renew it until the child may start.

Either the previous lease's end is not proven (wait one TTL, so that a holder which lost it has
fenced its child), or a warm child that cannot load is still ending (never two children).
:func:`start` is the one way into supervising.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from spiffctl.lease.machine import releasing, renewal, standby, warmchild
from spiffctl.lease.machine.common import BACK, Common, Lease, Setup, Then, Watched, holder_state, signalled
from spiffctl.lease.machine.io import (
    Action,
    Event,
    Lost,
    Renew,
    Renewed,
    Say,
    Signal,
    StartChild,
    StoreDown,
    StoreRefused,
    Tick,
)
from spiffctl.lease.machine.supervising import Armed, Stage, Supervising
from spiffctl.lease.machine.warmchild import WarmChild
from spiffctl.lease.messages import Go

if TYPE_CHECKING:
    from spiffctl.lease.machine.common import State


@dataclass(frozen=True)
class Waiting:
    common: Common
    lease: Lease
    start_at: float  # when the child may start
    warm: WarmChild | None = None  # a warm child not told to go (loading, loaded or ending)

    @property
    def watched(self) -> Watched:
        return warmchild.watched(self.warm)


def wait(
    setup: Setup, common: Common, lease: Lease, warm: WarmChild | None, start_at: float, out: list[Action]
) -> Waiting:
    s = Waiting(common, lease, start_at, warm)
    out.append(_state(setup, s))
    return s


def start(setup: Setup, common: Common, lease: Lease, warm: WarmChild | None, now: float, out: list[Action]) -> State:
    """Start the child, unless so little of the lease is left that the fence would hit it at once."""
    t = setup.t
    if now >= lease.valid_until - t.term_grace:
        # Delayed (frozen, overloaded) since the last renewal. No child ran under this epoch,
        # so releasing is safe and lets a standby (or us) start cleanly.
        text = f"the lease's local deadline is too close to start {setup.names.script}; {BACK}"
        return releasing.release(common, lease.epoch, warm, Then(say=text), out)
    if warm is not None and (warm.stage is warmchild.Stage.DYING or not common.warm):
        # A warm child that cannot load (or after a fallback to the script) is still ending:
        # never two children, so hold the lease without one a little longer.
        return Waiting(common, lease, now + t.poll, warm)
    next_state = now + t.renew_every  # and at once when the child is reported started
    if not common.warm:
        out.append(StartChild(lease.epoch, lease.valid_until, t.term_grace))
        return Supervising(common, lease, Armed(warm=False, stage=Stage.STARTING), next_state)
    if warm is None:
        warm = warmchild.warm_up(
            setup, now, out
        )  # none loaded (it failed, or ended): a cold start, still one app start
    waited = "" if warm.stage is not warmchild.Stage.LOADED else f", warm since {now - warm.since:.1f} s"
    text = f"starting the scheduler in the warm child (epoch {lease.epoch}{waited})"
    out.append(Say(text, "started", (("epoch", lease.epoch), ("pid", warm.pid), ("warm", True))))
    out.append(Go(lease.valid_until, lease.epoch))
    stage = Stage.STARTING if warm.pid is None else Stage.RUNNING
    loading_since = warm.since if warm.stage is warmchild.Stage.LOADING else 0.0
    return Supervising(common, lease, Armed(True, stage, warm.pid, loading_since), next_state)


def step(setup: Setup, s: Waiting, event: Event, now: float, out: list[Action]) -> State:
    match event:
        case Tick():
            return s
        case Signal(signum=signum):
            text = f"stopped by signal {signum} before {setup.names.script} started"
            return releasing.release(signalled(s.common, signum), s.lease.epoch, s.warm, Then(say=text, code=0), out)
        case Renewed(valid_until=valid_until):
            common, lease = renewal.renewed(setup, s.common, s.lease, valid_until, now, out)
            s = replace(s, common=common, lease=lease)
            out.append(_state(setup, s))
            return s
        case StoreDown(detail=detail) | StoreRefused(detail=detail):
            common, lease = renewal.failed(setup, s.common, s.lease, detail, "the lease will be given up", now, out)
            s = replace(s, common=common, lease=lease)
            out.append(_state(setup, s))
            return s
        case Lost(reason=reason):
            fields = (("epoch", s.lease.epoch), ("reason", reason))
            out.append(Say(f"lost the lease before starting: {reason}", "lost", fields))
            return standby.enter(setup, replace(s.common, store_ok=True), s.warm, now, out)
    common, warm = warmchild.report(setup, s.common, s.warm, event, now, out)
    return replace(s, common=common, warm=warm)


def advance(setup: Setup, s: Waiting, now: float, out: list[Action]) -> State:
    lease = s.lease
    if now >= lease.valid_until:
        if lease.failing_since is not None:
            kind = setup.names.store_kind
            why = f"{kind} unreachable for {now - lease.failing_since:.1f} s ({lease.last_failure})"
        else:
            why = "the local deadline passed before a renewal was due (spiffctl was delayed)"
        out.append(Say(f"lost the lease before starting: {why}", "lost", (("epoch", lease.epoch), ("reason", why))))
        back = standby.enter(setup, s.common, s.warm, now, out)
        return standby.advance(setup, back, now, out) if isinstance(back, standby.Standby) else back  # poll at once
    if now >= lease.next_renew:
        out.append(Renew())
        return s
    if now >= s.start_at:
        return start(setup, s.common, lease, s.warm, now, out)
    return s


def wakeup(s: Waiting) -> float:
    return min(s.lease.next_renew, s.start_at, s.lease.valid_until)


def _state(setup: Setup, s: Waiting) -> Action:
    pid = s.warm.pid if s.warm is not None else None
    wait = (s.start_at, s.common.waits_for)
    return holder_state(setup, s.common, s.lease.epoch, pid, warmchild.declared(s.warm), wait)
