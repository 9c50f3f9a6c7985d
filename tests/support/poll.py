"""The one poller of the tests: call a predicate until it holds, within a deadline.

Tests never sleep a fixed time waiting for an event; they poll with :func:`wait_until`.
``wait_for_port`` (:mod:`tests.support.ports`) and ``wait_for_record`` (:mod:`tests.standins`)
are built on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.05,
    *,
    what: str | Callable[[], object] = "condition",
) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns a truthy value; return that value.

    Exceptions raised by ``predicate`` count as "not yet". After ``timeout`` seconds a
    :class:`TimeoutError` names ``what`` and chains the last exception. ``what`` may be a callable
    (e.g. ``cluster.logs``): it is called only then, so the message shows the state at the failure.
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            result = predicate()
        except Exception as exc:
            last_exc = exc
        else:
            if result:
                return result
        if time.monotonic() >= deadline:
            detail = f"; last error: {last_exc!r}" if last_exc else ""
            described = what() if callable(what) else what
            raise TimeoutError(f"not true after {timeout:.1f}s: {described}{detail}") from last_exc
        time.sleep(interval)
