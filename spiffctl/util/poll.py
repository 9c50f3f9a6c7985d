"""Polling until something is ready: one deadline, a sleep between attempts, progress on one cadence.

Every wait of spiffctl (dependencies, the schema's head, the migration lock, the roles an
all-in-one role starts after) is this loop; only what is tried and what is said differ. A wait
never overruns its timeout: it gives up when the next sleep would reach the deadline, so
``--wait-timeout 1`` ends within a probe of one second. Progress lines come at most every
:data:`PROGRESS_EVERY` seconds, whatever is waited for, so logs stay readable.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

PROGRESS_EVERY = 3.0
# Between two attempts by default: a waiting role starts within this of what it waits for being ready.
POLL = 0.25

T = TypeVar("T")
D = TypeVar("D")


@dataclass(frozen=True)
class Pending(Generic[D]):
    """Not ready yet: what stands in the way, for the progress line and the timeout's message."""

    detail: D


class Poll:
    """One wait's clock, shared by the :func:`until` calls that make it up (one per dependency)."""

    def __init__(self, timeout: float, *, started: float | None = None, report_at_once: bool = False) -> None:
        self.timeout = timeout
        self.started = time.monotonic() if started is None else started
        self.deadline = self.started + timeout
        # At once: a wait that is news (the schema is behind) says so before the first cadence.
        self._reported = -math.inf if report_at_once else self.started

    @property
    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def report_due(self, now: float) -> bool:
        if now - self._reported < PROGRESS_EVERY:
            return False
        self._reported = now
        return True


def until(
    attempt: Callable[[], T | Pending[D]],
    poll: Poll,
    *,
    progress: Callable[[D, float], None],
    timed_out: Callable[[D, float], BaseException],
    first: float = POLL,
    longest: float = POLL,
) -> T:
    """Call ``attempt`` until it answers anything but :class:`Pending`, and return that.

    Between attempts sleep ``first`` seconds, doubling up to ``longest`` (equal: a fixed interval).
    ``progress(detail, waited)`` is called on the one cadence; when the deadline comes,
    ``timed_out(detail, waited)`` is raised. ``attempt`` raises what cannot get better by waiting.
    """
    delay = first
    while True:
        answer = attempt()
        if not isinstance(answer, Pending):
            return answer
        now = time.monotonic()
        waited = now - poll.started
        if now + delay >= poll.deadline:
            raise timed_out(answer.detail, waited)
        if poll.report_due(now):
            progress(answer.detail, waited)
        time.sleep(delay)
        delay = min(delay * 2, longest)
