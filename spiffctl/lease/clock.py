"""The clock every lease deadline is kept on, shared by spiffctl, the store code and the watchdog.

``CLOCK_BOOTTIME`` where it exists (Linux): like ``CLOCK_MONOTONIC`` it never jumps with the wall
clock, but it also counts the time the host spent suspended, during which the store (elsewhere)
kept expiring keys. A deadline computed in spiffctl is compared with this clock in the watchdog,
another process: both read the same system-wide clock. Stdlib only: the watchdog imports it.
"""

from __future__ import annotations

import time

_CLOCK = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


def now() -> float:
    return time.clock_gettime(_CLOCK)
