"""The lease in the backend's own database: a :class:`~spiffctl.lease.stores.Store` over a session lock.

One session of the database's kind (:class:`~spiffctl.databases.sessions.LeaseSession`) per
store, opened lazily and dropped at the first error:
a session lock cannot outlive its session, so a holder whose session failed has lost the lease,
and a standby simply connects again at its next poll.

How the store's calls map onto a session:

* ``try_acquire``: :meth:`~spiffctl.databases.sessions.LeaseSession.acquire`. The local deadline counts from a
  clock read before the lock query, as for Redis. Unlike a Redis key, the lock has no expiry on
  the server: the server ends it only with the session, which happens at the earliest when the
  session has been idle for the TTL (the idle limit each kind sets), i.e. after the holder's
  local deadline; or when the holder's process dies, the server restarts, fails over or
  terminates the session, none of which says the holder's script is gone. So a grant is proven
  only by a clean release (see each kind's module), and otherwise the runner waits one TTL.
* ``renew``: the session still holds the lock (one query); any failure is :class:`LeaseLost`
  (the session is gone or unusable), never an outage: retrying cannot bring a session back.
* ``release``: the kind's release with proof; the session stays open until :meth:`close`.
* ``current_holder``: read from the server (doctor, standby logs).

Errors. Driver and socket failures while connecting or polling become
:class:`~spiffctl.lease.stores.StoreOutage` or :class:`~spiffctl.lease.stores.StoreRefusal` as the
kind classifies them; anything else propagates: a bug.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable
from typing import TypeVar

from spiffctl import databases
from spiffctl.config.settings import Endpoint
from spiffctl.databases.sessions import LeaseSession
from spiffctl.lease import clock
from spiffctl.lease.stores import Grant, Holder, LeaseLost, StoreOutage, StoreRefusal
from spiffctl.lease.timing import local_deadline
from spiffctl.probes import Status

T = TypeVar("T")


def lock_name(key: str) -> str:
    """The lock's name for ``SPIFFCTL_LOCK_KEY``: short enough for the shortest limit on a lock's
    name among the kinds (64 characters) with a suffix, and a distinct space from the migration
    lock's names."""
    return f"spiffctl:lease:{hashlib.sha256(key.encode()).hexdigest()[:24]}"


class DatabaseStore:
    """One process's claim on the lease ``key`` in ``endpoint``'s database. Not thread-safe."""

    def __init__(
        self,
        endpoint: Endpoint,
        key: str,
        ttl: float,
        *,
        timeout: float,
        linger: float = 1.0,
        host: str | None = None,
        pid: int | None = None,
        now: Callable[[], float] = clock.now,
    ) -> None:
        self.endpoint = endpoint
        self.key = key
        self.ttl = ttl
        self.timeout = timeout
        self.linger = linger
        self.host = host or socket.gethostname()
        self.pid = pid or os.getpid()
        self.now = now
        self.kind = databases.NAMES[endpoint.kind]
        self.where = f"{self.kind} {endpoint.display}"
        self._kind = databases.of(endpoint)
        self._errors = self._kind.driver_errors()
        self._session: LeaseSession | None = None

    def _open(self) -> LeaseSession:
        if self._session is None:
            self._session = self._kind.open_session(
                self.endpoint,
                lock_name(self.key),
                self.ttl,
                timeout=self.timeout,
                host=self.host,
                pid=self.pid,
                linger=self.linger,
            )
        return self._session

    def _drop(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            session.close()

    def _call(self, action: Callable[[LeaseSession], T]) -> T:
        """``action`` on our session (connecting first if need be), its failures as the store's."""
        try:
            return action(self._open())
        except self._errors as e:
            self._drop()
            outcome = self._kind.classify(e)
            if outcome.status is Status.PERMANENT:
                raise StoreRefusal(outcome.detail) from e
            raise StoreOutage(outcome.detail) from e

    def refusal(self) -> str | None:
        self._call(lambda s: None)  # connects: a wrong password or a missing database says so here
        return None

    def try_acquire(self) -> Grant | Holder:
        t0 = self.now()
        got = self._call(lambda s: s.acquire())
        if got is not None:
            return Grant(epoch=got.epoch, valid_until=local_deadline(t0, self.ttl), proven=got.proven, why=got.why)
        holder = self._call(lambda s: s.holder())
        # Released between the two queries: the next poll takes it.
        return holder or Holder(host="a holder that just released it", pid=0, since=None, epoch=0, ttl_left=0.0)

    def renew(self) -> float | LeaseLost:
        if self._session is None:
            return LeaseLost("our database session is gone, and the lease with it")
        t0 = self.now()
        try:
            held = self._session.holds()
        except self._errors as e:
            self._drop()
            detail = self._kind.classify(e).detail
            return LeaseLost(
                f"our database session failed ({detail}); the lease ended with it "
                "(the server restarted, failed over or terminated the session, or it was idle too long)"
            )
        if not held:
            self._drop()
            return LeaseLost("our database session no longer holds the lease lock")
        return local_deadline(t0, self.ttl)

    def release(self) -> bool:
        if self._session is None:
            return False
        try:
            released = self._call(lambda s: s.release())
        except StoreOutage:
            return False  # the session is closed: the lock is released, without proof
        if not released:
            self._drop()
        # else the session stays until close(): a kind's proof of release may live as long as it does.
        return released

    def current_holder(self) -> Holder | None:
        return self._call(lambda s: s.holder())

    def close(self) -> None:
        self._drop()
