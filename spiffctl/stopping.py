"""SIGTERM or SIGINT while ``run`` waits (dependencies, schema, the API): one closing line, then exit.

Without it SIGTERM ended the process silently (Python's default) and SIGINT left through the
CLI's KeyboardInterrupt path, also silently: the operator saw progress lines stop, nothing else.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from spiffctl import state
from spiffctl.util import procs
from spiffctl.util.errors import SpiffctlError

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signum)


@contextmanager
def closing_line(what: str) -> Iterator[None]:
    """Turn a stop signal inside the block into one line naming the wait and ``what`` did not start;
    the exit code is the shell's 128 + the signal's number."""
    previous = {s: signal.signal(s, _raise) for s in SIGNALS}
    try:
        yield
    except Stopped as e:
        record = state.waiting(pid=os.getpid())
        during = f" while waiting for {record['on']}" if record else " before it started"
        name = signal.Signals(e.signum).name
        raise SpiffctlError(f"stopped by {name}{during}; {what} not started", procs.died_of(e.signum)) from None
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
