"""A warm child not told to go: it loads the app ahead of the lease and is not a scheduler.

It may live through standby, waiting and releasing (never supervising: there it is armed, see
:mod:`spiffctl.lease.machine.supervising`), so those phases carry it as a field and hand its
reports here. Its end never touches the lease: another one is loaded later, with backoff.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from spiffctl.lease.machine.common import Common, Setup, Watched
from spiffctl.lease.machine.io import Action, Event, KillGroup, ProtocolViolation, Say, StartWarm, WatchdogGone
from spiffctl.lease.messages import Exited, Failed, Loaded, LoadFailed, Started

WARM_BACKOFF_MAX = 60.0  # seconds between two attempts to load a warm child, at most


class Stage(Enum):
    LOADING = "loading"  # creating the app
    LOADED = "warm"  # the app is loaded: it waits for Go
    DYING = "dying"  # it reported that it cannot load: its end is coming


@dataclass(frozen=True)
class WarmChild:
    stage: Stage
    since: float  # when it entered its stage: started (loading) or loaded (machine clock)
    pid: int | None = None  # its pid (= its group) once reported

    @property
    def watched(self) -> Watched:
        return Watched(watchdog=True, pid=self.pid, armed=False)

    def declared(self) -> tuple[str | None, float | None]:
        """For the state file: ``loading`` or ``warm`` and since when; a dying one is neither."""
        return (None, None) if self.stage is Stage.DYING else (self.stage.value, self.since)


def watched(child: WarmChild | None) -> Watched:
    return child.watched if child is not None else Watched()


def declared(child: WarmChild | None) -> tuple[str | None, float | None]:
    return child.declared() if child is not None else (None, None)


def warm_up(setup: Setup, now: float, out: list[Action]) -> WarmChild:
    out.append(StartWarm(setup.t.term_grace))
    return WarmChild(Stage.LOADING, now)


def failed_once_more(setup: Setup, common: Common, now: float) -> tuple[Common, float]:
    """One more failure of a warm child: back off (poll·2^n, at most a minute) before the next."""
    failures = common.warm_failures + 1
    pause = min(setup.t.poll * 2.0 ** min(failures, 10), WARM_BACKOFF_MAX)
    return replace(common, warm_failures=failures, next_warm=now + pause), pause


def unusable(setup: Setup, common: Common, reason: str, out: list[Action]) -> Common:
    """Warm start cannot work here: run the script from now on, said once."""
    if not common.warm:
        return common
    text = f"warm start is not possible ({reason}); running {setup.names.script_path} instead"
    out.append(Say(text, "warm-fallback", (("reason", reason),)))
    return replace(common, warm=False)


def load_failed(setup: Setup, common: Common, event: LoadFailed, now: float, out: list[Action]) -> Common:
    if event.unusable:
        return unusable(setup, common, event.reason, out)
    common, pause = failed_once_more(setup, common, now)
    text = f"the warm child could not load the app: {event.reason}; trying again in {pause:g} s"
    out.append(Say(text, "warm-failed", (("reason", event.reason), ("retry_in", pause))))
    return common


def loaded_in(child_since: float, now: float) -> str:
    return f"in {now - child_since:.1f} s"


def report(
    setup: Setup, common: Common, child: WarmChild | None, event: Event, now: float, out: list[Action]
) -> tuple[Common, WarmChild | None]:
    """A report of the watchdog of a warm child not told to go: the child's next stage, or its end."""
    if child is None:
        raise ProtocolViolation(f"{type(event).__name__} without a watchdog")
    match event:
        case Started(pid=pid):
            out.append(Say(f"warm child (pid {pid}) is loading the app with {setup.names.python}", "warm-loading"))
            return common, replace(child, pid=pid)
        case Loaded():
            text = (
                f"warm standby: the app is loaded ({loaded_in(child.since, now)}); "
                "the scheduler starts as soon as we hold the lease"
            )
            out.append(Say(text, "warm-loaded"))
            return replace(common, warm_failures=0), replace(child, stage=Stage.LOADED, since=now)
        case LoadFailed():
            return load_failed(setup, common, event, now, out), replace(child, stage=Stage.DYING)
        case Exited(code=code):
            return _gone(setup, common, child, f"the warm child exited with code {code}", now, out), None
        case Failed(reason=reason):
            common = unusable(setup, common, f"{setup.names.python} cannot be executed: {reason}", out)
            return common, None
        case WatchdogGone():
            if child.pid is not None:
                out.append(KillGroup(child.pid, wait=False))  # not a scheduler: no need to wait
            return _gone(setup, common, child, "the warm child's watchdog died", now, out), None
    raise ProtocolViolation(f"{type(event).__name__} for a warm child")


def _gone(setup: Setup, common: Common, child: WarmChild, what: str, now: float, out: list[Action]) -> Common:
    """It ended: unless it had said so already, that is a failure to back off from."""
    if child.stage is Stage.DYING or not common.warm:
        return common
    common, pause = failed_once_more(setup, common, now)
    out.append(Say(f"{what}; loading a new one in {pause:g} s", "warm-failed", (("reason", what), ("retry_in", pause))))
    return common
