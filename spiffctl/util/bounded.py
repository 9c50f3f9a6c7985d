"""Answers that must arrive by a deadline even when a driver blocks inside C code.

No Python timeout can interrupt a thread stuck in a blocking read (libpq rounds its connect
timeout up to 2 s; a server that accepts and never answers can hold a read far longer than
asked). So the work runs in daemon threads, the caller waits for them only until the deadline,
and a caller that still has threads running leaves with :func:`leave`: interpreter shutdown
would join them and wait as long as they block.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import NoReturn, TypeVar

T = TypeVar("T")


def race(tasks: Sequence[Callable[[], T]], deadline: float, *, name: str) -> tuple[list[T | None], int]:
    """Run every task at once; return what each returned by ``deadline`` (monotonic), ``None`` for
    the rest, and how many threads are still running. Tasks must catch their own exceptions."""
    results: list[T | None] = [None] * len(tasks)

    def runner(i: int, task: Callable[[], T]) -> None:
        results[i] = task()

    threads = [
        threading.Thread(target=runner, args=(i, task), name=f"{name}-{i}", daemon=True) for i, task in enumerate(tasks)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    # Even a thread about to finish counts: the caller must never join it.
    return results, sum(t.is_alive() for t in threads)


def leave(code: int) -> NoReturn:
    """Exit at once, output flushed, without joining threads that may never return."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
