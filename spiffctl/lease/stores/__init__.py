"""What the lease runner needs from the place a lease lives, whatever that place is.

A store keeps one lease under one key: at most one holder at a time, with an expiry of ``ttl``
seconds that the holder resets by renewing, and an epoch that is larger at every acquisition: by
one in Redis and in a file database, by leaps on a database server (a server-wide counter drawn by
everyone). The runner (:mod:`spiffctl.lease.guard`) drives it; the state machine
(:mod:`spiffctl.lease.machine`) never sees it, only what the runner makes of its answers. There are
two stores: Redis (:mod:`.redis`) and the backend's own database (:mod:`.database`, over a session
of the database's kind); :func:`open_store` opens the one the lease configuration names, for the
runner and for doctor alike. Anything store-specific (Redis's run_id, the release tombstone,
eviction policies, a session lock) stays behind this interface.

The error model. A store call ends in one of four ways:

* an answer: a :class:`Grant` or a :class:`Holder`, a new local deadline or :class:`LeaseLost`;
* :class:`StoreOutage`: the store could not answer now (connection refused or reset, timed out,
  still loading its data, failing over). Waiting may help: a standby keeps polling, a holder keeps
  retrying until its local deadline, when the watchdog fences the script;
* :class:`StoreRefusal`: the store answered and said no (wrong password, no such database, not
  allowed). Retrying the same request cannot help: a standby exits 69; a holder keeps trying
  anyway, because its script is running and the fence stops it in time;
* anything else is a bug in spiffctl (or in a driver) and is never disguised as an outage: the
  runner fences its script and exits 70.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from spiffctl.lease.config import LeaseConfig
    from spiffctl.lease.timing import Timings


class StoreOutage(Exception):
    """The store did not answer; ``str(e)`` is one redacted line saying why."""


class StoreRefusal(Exception):
    """The store answered with a refusal that retrying will not change; ``str(e)`` says which."""


def format_wall(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


def released_cleanly(epoch: int | str) -> str:
    """Why a grant is proven: the previous lease's holder released it after its script exited."""
    return f"epoch {epoch} was released cleanly"


@dataclass(frozen=True)
class Holder:
    """Who holds the lease now, as recorded at acquisition (``epoch`` 0 when no record matches)."""

    host: str
    pid: int
    since: float | None  # wall-clock seconds
    epoch: int
    ttl_left: float  # seconds until the store expires the lease unless it is renewed

    def describe(self) -> str:
        since = f" since {format_wall(self.since)}" if self.since else ""
        epoch = f", epoch {self.epoch}" if self.epoch else ""
        pid = f" pid {self.pid}" if self.pid else ""  # some kinds name a connection, not a process
        return f"{self.host}{pid}{since}{epoch}"


@dataclass(frozen=True)
class Grant:
    """A successful acquisition."""

    epoch: int
    valid_until: float  # on clock.now(); the child must be dead by then unless a renewal succeeds
    proven: bool  # the previous lease certainly ended: the child may start at once
    why: str  # how we know (or why we do not), for the log


@dataclass(frozen=True)
class LeaseLost:
    """A renewal found the lease gone or taken; ``reason`` says which and what it means."""

    reason: str


class Store(Protocol):
    """One process's claim on one lease key. Not thread-safe: one runner drives it.

    Every method raises only :class:`StoreOutage` or :class:`StoreRefusal` for the store's own
    failures; any other exception is a bug.
    """

    @property
    def kind(self) -> str:
        """What the store is, for messages: ``Redis``."""

    @property
    def where(self) -> str:
        """Where it is, redacted, for messages: ``Redis redis://cache:6379/0``."""

    def refusal(self) -> str | None:
        """Why this store cannot keep a lease safely (e.g. it may evict the key), with the fix; else None."""

    def try_acquire(self) -> Grant | Holder:
        """Take the lease if it is free (a :class:`Grant`), else say who holds it."""

    def renew(self) -> float | LeaseLost:
        """Reset the lease's expiry: the new local deadline (clock read before the request), or why it is lost."""

    def release(self) -> bool:
        """Give the lease up if it is still ours (True). Call only once the child is gone."""

    def current_holder(self) -> Holder | None:
        """Who holds the lease, read-only (``doctor``); None when nobody does."""

    def close(self) -> None: ...


def open_store(config: LeaseConfig, timings: Timings, *, timeout: float | None = None) -> Store:
    """The store ``config`` names (connecting lazily); every call gives up after ``timeout``
    (default: the request timeout of ``timings``)."""
    assert config.url is not None
    timeout = timings.request_timeout if timeout is None else timeout
    if config.database is not None:
        from spiffctl.lease.stores.database import DatabaseStore

        # How long a releasing holder keeps its session, where a kind may keep its proof of release: a few polls.
        return DatabaseStore(config.database, config.key, config.ttl, timeout=timeout, linger=3 * timings.poll)
    from spiffctl.lease.stores.redis import RedisStore

    return RedisStore.from_url(config.url, config.key, config.ttl, timeout=timeout)
