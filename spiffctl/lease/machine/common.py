"""What every phase shares: the fixed setup, what outlives a phase, the lease held, the end.

Each phase's state is one frozen object; what must survive a change of phase (the signal
received, the store's last answer, the warm start's backoff) rides along in :class:`Common`, so a
transition builds the next phase's object from it and nothing is reset by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeAlias

from spiffctl.lease.machine.io import Action, Exit, KillGroup, Names, Say, WriteState
from spiffctl.lease.messages import Stop
from spiffctl.lease.timing import Timings
from spiffctl.util.errors import SOFTWARE, internal_error

BACK = "back to standby"


@dataclass(frozen=True)
class Setup:
    """Fixed for the machine's life: the intervals and how messages name things."""

    t: Timings
    names: Names

    def what(self, common: Common) -> str:
        """What starts under the lease: the script, or the scheduler in a warm child."""
        return "the scheduler" if common.warm else self.names.script


@dataclass(frozen=True)
class Common:
    """What outlives a phase."""

    # Warm start: a child loads the app ahead of the lease and starts the scheduler on Go. Turned
    # off for good when the warm child reports that it cannot work (fall back to the script).
    warm: bool
    store_ok: bool | None = None  # the last store call got an answer
    checked: bool = False  # the store's refusal check passed since a store call last failed
    stop_signal: int | None = None
    stop_count: int = 0
    warm_failures: int = 0
    next_warm: float = 0.0  # no warm child is started before this (backoff after failures)
    # The last wait's reason: a wait for a warm child that is still ending declares it again.
    waits_for: str = ""


@dataclass(frozen=True)
class Lease:
    """The lease while we hold it: its epoch and local deadline, and how renewing it goes."""

    epoch: int
    valid_until: float
    next_renew: float
    failing_since: float | None = None  # renewals have failed since then
    last_failure: str = ""


@dataclass(frozen=True)
class Then:
    """What to do once a release was answered: exit with ``code`` (None: back to standby)."""

    say: str | None
    code: int | None = None
    error: str | None = None
    event: str | None = None  # the transition said with it; default: released (handed-off on a signal)
    pause: float = 0.0  # back on standby: poll the store again only after this long


@dataclass(frozen=True)
class Watched:
    """The watchdog as an exit or a bug sees it: alive or not, the script's group, armed or not."""

    watchdog: bool = False
    pid: int | None = None
    armed: bool = False  # it may run the scheduler: the script, or a warm child told to go


@dataclass(frozen=True)
class Done:
    """Exit was issued; nothing more happens."""

    common: Common


def finish(common: Common, watched: Watched, out: list[Action], code: int, error: str | None = None) -> Done:
    if watched.watchdog and not watched.armed:
        out.append(Stop(0.0))  # a warm child that never started the scheduler: nothing to wait for
    out.append(Exit(code, error))
    return Done(common)


def bug(common: Common, watched: Watched, detail: str, out: list[Action]) -> Done:
    """Fence first: the watchdog kills at once, and so do we when we know the group."""
    if watched.watchdog:
        out.append(Stop(0.0))
    if watched.pid is not None:
        out.append(KillGroup(watched.pid, wait=True))
    return finish(common, watched, out, SOFTWARE, internal_error(detail))


def signalled(common: Common, signum: int) -> Common:
    """SIGTERM or SIGINT: the first stops the child with stop_grace, a second at once."""
    return replace(common, stop_signal=signum, stop_count=common.stop_count + 1)


def stopped_on_standby(common: Common, watched: Watched, out: list[Action]) -> Done:
    out.append(Say(f"stopped by signal {common.stop_signal} while on standby"))
    return finish(common, watched, out, 0)


def holder_state(
    setup: Setup,
    common: Common,
    epoch: int,
    pid: int | None,
    warm: tuple[str | None, float | None] = (None, None),
    wait: tuple[float, str] | None = None,
) -> WriteState:
    """The state file while holding the lease; ``wait``: when the child starts and why not yet."""
    starts_at, waits_for = wait if wait is not None else (None, None)
    return WriteState(
        "holder",
        epoch,
        pid,
        None,
        common.store_ok,
        round(setup.t.renew_every, 3),
        starts_at=starts_at,
        waits_for=waits_for,
        warm=warm[0],
        warm_since=warm[1],
    )


def standby_state(
    setup: Setup, common: Common, holder: str | None, warm: tuple[str | None, float | None]
) -> WriteState:
    return WriteState(
        "standby",
        None,
        None,
        holder,
        common.store_ok,
        round(setup.t.poll, 3),
        warm=warm[0],
        warm_since=warm[1],
    )


if TYPE_CHECKING:
    from spiffctl.lease.machine.releasing import Releasing
    from spiffctl.lease.machine.standby import Standby
    from spiffctl.lease.machine.supervising import Supervising
    from spiffctl.lease.machine.waiting import Waiting

    State: TypeAlias = Standby | Waiting | Supervising | Releasing | Done
