"""The machine's inputs and outputs: every event it takes and every action it asks the shell for.

Events are what happened (time, a signal, a store's answer, a watchdog's report, a bug); actions
are what to do (say, write the state file, ask the store, start or fence the child, exit). The
watchdog's own messages (:mod:`spiffctl.lease.messages`) are both: its reports come in as events,
``Fence``/``Stop``/``Go`` go out as actions. A store call is a :data:`Request` whose answer
(:data:`ANSWERS`) is the machine's next event.
"""

from __future__ import annotations

from dataclasses import dataclass

from spiffctl.lease.messages import Exited, Failed, Fence, Go, Loaded, LoadFailed, Started, Stop

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


ANSWERS: dict[type, tuple[type, ...]] = {
    CheckStore: (Checked, StoreDown, StoreRefused),
    Acquire: (Acquired, HeldBy, StoreDown, StoreRefused),
    Renew: (Renewed, Lost, StoreDown, StoreRefused),
    Release: (Released,),
    KillGroup: (GroupKilled,),
}
ALL_ANSWERS = tuple({t for ts in ANSWERS.values() for t in ts})


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
