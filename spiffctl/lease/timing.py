"""Every interval of the lease protocol, derived from the TTL so a small test TTL scales them all.

Pure arithmetic (no clock is read here): :mod:`spiffctl.lease.machine` and every store share it.

The local deadline. A holder reads its clock into ``t0`` *before* it sends an acquire or renew.
The store starts the lease's expiry when the request arrives, i.e. after ``t0``, so as far as the
holder's clock can tell the lease is certainly still held until ``t0 + ttl``. Allowing for a clock
rate difference between this host and the store (:data:`DRIFT`) and for the time it takes to kill
a process group (:func:`margin`), the holder treats the lease as valid until
``t0 + ttl * (1 - DRIFT) - margin(ttl)`` and never measures from the reply, which may come late.
"""

from __future__ import annotations

from dataclasses import dataclass

DRIFT = 0.01  # clock rate difference tolerated between this host and the store (redlock uses 1%)
BELT = 0.5  # the renewer kills the group itself when the watchdog is this late past the deadline


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def margin(ttl: float) -> float:
    """Seconds kept between the local deadline and the lease's earliest expiry in the store.

    Covers the watchdog's timer slack and the time SIGKILL takes to empty a process group.
    """
    return max(0.2, 0.02 * ttl)


def local_deadline(t0: float, ttl: float) -> float:
    """Until when a lease acquired or renewed by a request sent at ``t0`` is certainly ours."""
    return t0 + ttl * (1 - DRIFT) - margin(ttl)


@dataclass(frozen=True)
class Timings:
    ttl: float
    stop_grace: float  # first SIGTERM/SIGINT to spiffctl: the script gets this long before SIGKILL

    @property
    def renew_every(self) -> float:
        return self.ttl / 3  # two renewals may fail before the script is stopped

    @property
    def poll(self) -> float:
        """Standby poll and renewal retry interval: bounds the handoff delay."""
        return _clamp(self.ttl / 10, 0.2, 0.5)

    @property
    def term_grace(self) -> float:
        """SIGTERM this long before the deadline so the script may exit cleanly when fenced."""
        return _clamp(self.ttl / 6, 0.3, 5.0)

    @property
    def request_timeout(self) -> float:
        """One store call gives up after this long: several fit between two renewals."""
        return _clamp(self.ttl / 10, 0.25, 2.0)

    @property
    def unproven_wait(self) -> float:
        """Hold the lease without a child this long when the previous lease's end is not proven.

        By then any holder that still had the key has passed its own local deadline (which is
        earlier than ``t0 + ttl`` on its clock) and fenced its child, clock drift included.
        """
        return self.ttl * (1 + DRIFT)

    @property
    def belt(self) -> float:
        return BELT

    def deadline(self, t0: float) -> float:
        return local_deadline(t0, self.ttl)
