"""Bounded waiting for dependencies: short capped backoff, progress lines, transient vs permanent.

The backoff is capped low (a quarter second) because the goal is to start the role within half
a second of its dependency becoming ready; a probe against a down local port costs almost
nothing, so polling fast is cheap. The loop, its deadline and its progress cadence are
:mod:`spiffctl.util.poll`'s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from spiffctl import probes
from spiffctl.config.settings import Endpoint
from spiffctl.log import Event
from spiffctl.probes import Status
from spiffctl.util import bounded, poll, procfs
from spiffctl.util.errors import UnavailableError
from spiffctl.util.redact import Redactor

FIRST_DELAY = 0.05
MAX_DELAY = 0.25
# One attempt may take this long at most; a single check (timeout 0) gets the longer bound.
ATTEMPT_TIMEOUT = 2.0
SINGLE_CHECK_TIMEOUT = 5.0

Say = Callable[[str], None]


def describe(endpoint: Endpoint) -> str:
    """``database (postgres at db:5432/spiff)``: what and where, never a password."""
    parts = endpoint.parts
    if endpoint.kind == "sqlite":
        where = parts.path or ":memory:"
    else:
        host = parts.host or "localhost"
        where = f"{host}:{parts.port}" if parts.port else host
        path = parts.path.lstrip("/") if endpoint.grammar == "standard" else parts.path
        if path:
            where += "/" + path
    what = endpoint.need.value if endpoint.need else endpoint.kind
    return f"{what} ({endpoint.kind} at {where})"


def wait_for(
    endpoints: Sequence[Endpoint],
    timeout: float,
    *,
    say: Say,
    redactor: Redactor,
) -> None:
    """Return once every endpoint answers; raise :class:`UnavailableError` otherwise.

    ``timeout`` is the total for all endpoints together (0: check each once). A permanent
    failure raises at once: a wrong password will not become right by waiting.
    """
    # From exec, not from here: the operator's clock started with the process (imports included).
    clock = poll.Poll(timeout, started=procfs.exec_time())
    for endpoint in endpoints:
        _wait_for_one(endpoint, clock, say=say, redactor=redactor)


def _wait_for_one(endpoint: Endpoint, clock: poll.Poll, *, say: Say, redactor: Redactor) -> None:
    def attempt() -> poll.Pending[str] | None:
        limit = SINGLE_CHECK_TIMEOUT if clock.timeout == 0 else min(ATTEMPT_TIMEOUT, max(clock.remaining, 0.05))
        outcome = bounded_check(endpoint, limit)
        if outcome.ok:
            return None
        detail = redactor(probes.clause(outcome.detail))
        if outcome.status is Status.PERMANENT:
            raise UnavailableError(f"{describe(endpoint)} refused: {detail}; check {endpoint.variable}")
        return poll.Pending(detail)

    def progress(detail: str, waited: float) -> None:
        text = f"waiting for {describe(endpoint)}: {detail} ({_secs(waited)} s of {_secs(clock.timeout)} s)"
        say(waiting_event(text, describe(endpoint), waited, detail, timeout=clock.timeout))

    def timed_out(detail: str, waited: float) -> UnavailableError:
        return UnavailableError(
            f"{describe(endpoint)} not ready after {_secs(waited)} s: {detail}; "
            f"check that it runs and {endpoint.variable} points at it, or raise --wait-timeout"
        )

    poll.until(attempt, clock, progress=progress, timed_out=timed_out, first=FIRST_DELAY, longest=MAX_DELAY)


def waiting_event(text: str, dependency: str, waited: float, error: str, timeout: float | None = None) -> Event:
    """A wait's progress line as an event: what is waited for, for how long, the last error."""
    return Event(text, "waiting", dependency=dependency, waited=round(waited, 1), error=error, timeout=timeout)


def bounded_check(endpoint: Endpoint, limit: float) -> probes.Outcome:
    """One probe that answers within ``limit`` even when its driver does not (libpq never gives
    up in less than 2 s; a server that accepts and never answers can hold a read longer)."""
    [outcome], _ = bounded.race([lambda: probes.check(endpoint, limit)], time.monotonic() + limit, name="probe")
    return outcome if outcome is not None else probes.transient(f"no answer within {_secs(limit)} s")


def _secs(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"
