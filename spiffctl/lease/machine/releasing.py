"""Releasing: the child is gone (or never started); the store's answer decides exit or standby."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from spiffctl.lease.machine import standby, warmchild
from spiffctl.lease.machine.common import Common, Setup, Then, Watched, finish
from spiffctl.lease.machine.io import Action, Event, ProtocolViolation, Release, Released, Say
from spiffctl.lease.machine.warmchild import WarmChild

if TYPE_CHECKING:
    from spiffctl.lease.machine.common import State


@dataclass(frozen=True)
class Releasing:
    common: Common
    epoch: int
    then: Then
    warm: WarmChild | None = None  # a warm child not told to go lives on

    @property
    def watched(self) -> Watched:
        return warmchild.watched(self.warm)


def release(common: Common, epoch: int, warm: WarmChild | None, then: Then, out: list[Action]) -> Releasing:
    out.append(Release())
    return Releasing(common, epoch, then, warm)


def step(setup: Setup, s: Releasing, event: Event, now: float, out: list[Action]) -> State:
    if not isinstance(event, Released):
        raise ProtocolViolation(f"{type(event).__name__} while releasing")
    common, then = s.common, s.then
    if event.released:
        outcome = "lease released"
        common = replace(common, store_ok=True)
    elif event.failure is not None:
        outcome = f"could not release the lease ({event.failure}); it expires by itself"
        common = replace(common, store_ok=False)
    else:
        outcome = "the lease was no longer ours"
    name = then.event or ("handed-off" if common.stop_signal is not None else "released")
    fields = (("epoch", s.epoch), ("released", event.released))
    if then.code is not None:
        if then.say is not None:
            out.append(Say(f"{then.say}; {outcome}", name, (*fields, ("code", then.code))))
        return finish(common, s.watched, out, then.code, then.error)
    if then.say is not None:
        out.append(Say(then.say, name, fields))
    if event.failure is not None:
        out.append(Say(outcome, None if then.say is not None else name, fields))
    back = standby.enter(setup, common, s.warm, now, out)
    return replace(back, next_poll=now + then.pause) if isinstance(back, standby.Standby) else back
