"""Supervising: the lease is held and the watchdog runs an armed child, one that may run the scheduler
(the script, or a warm child told to go). Renew and fence; stop it on a signal or a lost lease;
back the watchdog up past the deadline; once its group is gone, release (or go back to standby).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING

from spiffctl.lease.machine import releasing, renewal, standby, warmchild
from spiffctl.lease.machine.common import BACK, Common, Lease, Setup, Then, Watched, finish, holder_state, signalled
from spiffctl.lease.machine.io import (
    Action,
    Event,
    GroupKilled,
    KillGroup,
    Lost,
    ProtocolViolation,
    Renew,
    Renewed,
    Say,
    Signal,
    StoreDown,
    StoreRefused,
    Tick,
    WatchdogGone,
)
from spiffctl.lease.messages import Exited, Failed, Fence, How, Loaded, LoadFailed, Started, Stop
from spiffctl.util.errors import SOFTWARE, cannot_execute, internal_error

if TYPE_CHECKING:
    from spiffctl.lease.machine.common import State

KILLED = 128 + 9  # a script whose group we had to SIGKILL ourselves


class Stage(Enum):
    STARTING = "starting"  # the watchdog runs; the child's pid is not reported yet
    RUNNING = "running"  # its pid (= its group) is known
    ORPHANED = "orphaned"  # its watchdog died: SIGKILL its group until it is gone


@dataclass(frozen=True)
class Armed:
    warm: bool  # a warm child told to go (else the script)
    stage: Stage
    pid: int | None = None
    loading_since: float = 0.0  # a warm child still loading: since when


@dataclass(frozen=True)
class Supervising:
    common: Common
    lease: Lease
    child: Armed
    next_state: float  # the state file is rewritten then
    lost: str | None = None  # why the lease was lost: the child is being stopped
    belted: bool = False  # we SIGKILLed the group ourselves past the deadline
    stops_sent: int = 0  # signals already turned into a Stop

    @property
    def watched(self) -> Watched:
        return Watched(watchdog=self.child.stage is not Stage.ORPHANED, pid=self.child.pid, armed=True)


def step(setup: Setup, s: Supervising, event: Event, now: float, out: list[Action]) -> State:
    match event:
        case Tick():
            return s
        case Signal(signum=signum):
            return _send_stop(setup, replace(s, common=signalled(s.common, signum)), out)
        case Renewed(valid_until=valid_until):
            common, lease = renewal.renewed(setup, s.common, s.lease, valid_until, now, out)
            out.append(Fence(lease.valid_until))
            return replace(s, common=common, lease=lease)
        case StoreDown(detail=detail) | StoreRefused(detail=detail):
            then = f"{setup.names.script} will be stopped"
            common, lease = renewal.failed(setup, s.common, s.lease, detail, then, now, out)
            return replace(s, common=common, lease=lease)
        case Lost(reason=reason):
            lost = (("epoch", s.lease.epoch), ("reason", reason))
            out.append(Say(f"lost the lease: {reason}; stopping {setup.names.script}", "lost", lost))
            if s.watched.watchdog:
                out.append(Stop(setup.t.term_grace))
            return replace(s, common=replace(s.common, store_ok=True), lost=reason)
        case GroupKilled(gone=gone):
            return _group_killed(setup, s, gone, now, out)
    if s.child.stage is Stage.ORPHANED or (isinstance(event, (Loaded, LoadFailed)) and not s.child.warm):
        raise ProtocolViolation(f"{type(event).__name__} in phase supervising without a watchdog")
    return _report(setup, s, event, now, out)


def _report(setup: Setup, s: Supervising, event: Event, now: float, out: list[Action]) -> State:
    """The watchdog's reports about the armed child."""
    match event:
        case Started(pid=pid):
            if not s.child.warm:
                text = f"started {setup.names.script} (pid {pid}, epoch {s.lease.epoch}) under the lease"
                out.append(Say(text, "started", (("epoch", s.lease.epoch), ("pid", pid))))
            return replace(s, child=replace(s.child, stage=Stage.RUNNING, pid=pid), next_state=now)
        case Loaded():
            took = warmchild.loaded_in(s.child.loading_since, now)
            out.append(Say(f"the app is loaded ({took}); the scheduler starts now", "warm-loaded"))
            return replace(s, common=replace(s.common, warm_failures=0))
        case LoadFailed():
            return replace(s, common=warmchild.load_failed(setup, s.common, event, now, out))
        case Exited(code=code, how=how):
            return _child_gone(setup, s, code, how, now, out)
        case Failed(reason=reason) if s.child.warm:
            common = warmchild.unusable(setup, s.common, f"{setup.names.python} cannot be executed: {reason}", out)
            # Nothing ran: release, so that the script starts cleanly (here or elsewhere).
            return releasing.release(common, s.lease.epoch, None, Then(say=None), out)
        case Failed(code=code, reason=reason):
            # The script could not be executed: nothing ran, so release, then exit with the shell's code.
            error = cannot_execute(setup.names.script_path, reason)
            return releasing.release(s.common, s.lease.epoch, None, Then(say=None, code=code, error=error), out)
        case WatchdogGone():
            return _watchdog_gone(setup, s, out)
    raise ProtocolViolation(f"{type(event).__name__} in phase supervising")


def advance(setup: Setup, s: Supervising, now: float, out: list[Action]) -> Supervising:
    s = _send_stop(setup, s, out)
    pid = s.child.pid
    if pid is not None and not s.belted and now >= s.lease.valid_until + setup.t.belt:
        # The watchdog should have killed the group by now: it is frozen or gone.
        out.append(Say(f"the watchdog missed the deadline; killing {setup.names.script}'s process group"))
        out.append(KillGroup(pid, wait=False))
        s = replace(s, belted=True)
    if now >= s.next_state:
        out.append(holder_state(setup, s.common, s.lease.epoch, pid))
        s = replace(s, next_state=now + setup.t.renew_every)
    if s.lost is None and now >= s.lease.next_renew:
        out.append(Renew())
    return s


def wakeup(setup: Setup, s: Supervising) -> float:
    times = [s.next_state]
    if s.lost is None:
        times.append(s.lease.next_renew)
    if s.child.pid is not None and not s.belted:
        times.append(s.lease.valid_until + setup.t.belt)
    return min(times)


def _send_stop(setup: Setup, s: Supervising, out: list[Action]) -> Supervising:
    """Turn pending signals into Stop messages: the first gives the script stop_grace, a second none."""
    common = s.common
    if common.stop_signal is None or not s.watched.watchdog or s.stops_sent >= min(common.stop_count, 2):
        return s
    grace = setup.t.stop_grace if common.stop_count == 1 else 0.0
    if s.stops_sent == 0:
        text = f"signal {common.stop_signal}: stopping {setup.names.script} (up to {grace:g} s), then releasing"
        out.append(Say(text))
    out.append(Stop(grace))
    return replace(s, stops_sent=common.stop_count)


def _watchdog_gone(setup: Setup, s: Supervising, out: list[Action]) -> State:
    orphaned = replace(s, child=replace(s.child, stage=Stage.ORPHANED))
    if s.child.pid is None:
        # It never reported a start: it could not be run at all, or was killed right away.
        error = internal_error(
            f"the watchdog exited before it started {setup.names.script} (can `python -I -S` import "
            "spiffctl.lease.watchdog from where spiffctl is installed?)"
        )
        return finish(orphaned.common, orphaned.watched, out, SOFTWARE, error)
    out.append(KillGroup(s.child.pid, wait=True))
    return orphaned


def _group_killed(setup: Setup, s: Supervising, gone: bool, now: float, out: list[Action]) -> State:
    script = setup.names.script
    if not gone:
        # Only a process stuck in the kernel survives SIGKILL; it runs no code meanwhile.
        # Starting another child before it is gone would break "never two children".
        out.append(Say(f"{script}'s process group {s.child.pid} is still there after SIGKILL; waiting"))
        assert s.child.pid is not None
        out.append(KillGroup(s.child.pid, wait=True))
        return s
    out.append(Say(f"the watchdog died unexpectedly; killed {script}'s process group"))
    return _child_gone(setup, s, KILLED, How.FENCED, now, out)


def _child_gone(setup: Setup, s: Supervising, code: int, how: How, now: float, out: list[Action]) -> State:
    """The watchdog reported the script's whole group gone: release, then exit or back to standby."""
    common, epoch = s.common, s.lease.epoch
    script = setup.names.script if not s.child.warm else "the scheduler (warm child)"
    own = how is How.OWN and s.lost is None
    if s.child.warm and common.stop_signal is None and own:
        # Not the script: ours to restart. Let another replica take over while we back off.
        common, pause = warmchild.failed_once_more(setup, common, now)
        return releasing.release(
            common, epoch, None, Then(f"{script} exited by itself with code {code}; {BACK}", pause=pause), out
        )
    if common.stop_signal is not None or own:
        verb = "stopped" if common.stop_signal is not None else "exited by itself"
        return releasing.release(common, epoch, None, Then(say=f"{script} {verb} with code {code}", code=code), out)
    if s.lost is not None:
        # Not ours any more: releasing would be a no-op, and the next holder needs no tombstone.
        text = f"{script} was fenced (code {code}) because the lease was lost: {s.lost}; {BACK}"
        out.append(Say(text, "fenced", (("epoch", epoch), ("code", code), ("reason", s.lost))))
        return standby.enter(setup, common, None, now, out)
    failing_since = s.lease.failing_since
    reason = (
        f"could not renew for {now - failing_since:.1f} s ({s.lease.last_failure})"
        if failing_since is not None
        else "the local deadline passed without a successful renewal"
    )
    text = f"{script} was fenced (code {code}) because the lease was lost: {reason}; {BACK}"
    return releasing.release(common, epoch, None, Then(say=text, event="fenced"), out)
