"""Output that never blocks supervision: write what the reader takes, drop and count the rest.

supervisord writes every role's lines from its one event loop. A blocking write to a stdout
nobody reads (a full pipe, a stopped log shipper) would stall that loop, and with it the stop
on SIGTERM, fail fast and the grace period. So each output descriptor gets a bounded buffer: a
write goes out only as far as the descriptor is ready (``poll`` with no wait, then at most
``PIPE_BUF`` bytes, which a ready pipe always takes whole), the rest waits in the buffer, and
what does not fit in the buffer is dropped and counted. The first drop is said once on stderr;
:func:`finish` says the total.

The descriptor's flags are left alone: ``O_NONBLOCK`` lives on the open file description, which
the container runtime or the operator's shell shares with us.
"""

from __future__ import annotations

import os
import select
import time

# What a slow reader may fall behind by before lines are dropped (per descriptor).
MAX_BUFFER = 256 * 1024
CHUNK = select.PIPE_BUF
FINISH_WAIT = 0.5


class Outlet:
    # not a dataclass: PID 1 (supervisord) imports this module, and dataclasses costs it ~1 MB
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()
        self.dropped_bytes = 0
        self.dropped_lines = 0

    def write(self, data: bytes) -> None:
        self.pump()
        if len(self.buffer) + len(data) > MAX_BUFFER:
            self._drop(data)  # whole writes only: a kept line is never cut short
            return
        self.buffer += data
        self.pump()

    def pump(self) -> None:
        """Write as much of the buffer as the descriptor takes without waiting."""
        poller = select.poll()
        poller.register(self.fd, select.POLLOUT)
        while self.buffer:
            try:
                ready = poller.poll(0)
                if not ready:
                    return
                if ready[0][1] & (select.POLLERR | select.POLLNVAL):
                    raise BrokenPipeError
                written = os.write(self.fd, self.buffer[:CHUNK])
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # stdout closed (reader gone): losing log lines beats stopping supervision.
                self._drop(bytes(self.buffer))
                self.buffer.clear()
                return
            del self.buffer[:written]

    def _drop(self, data: bytes) -> None:
        first = not self.dropped_bytes
        self.dropped_bytes += len(data)
        self.dropped_lines += data.count(b"\n")
        if first and self.fd != 2:
            outlet(2).write(
                f"spiffctl: output to fd {self.fd} is not being read; dropping what cannot be written "
                "(counted, total at exit)\n".encode()
            )


_OUTLETS: dict[int, Outlet] = {}


def outlet(fd: int) -> Outlet:
    if fd not in _OUTLETS:
        _OUTLETS[fd] = Outlet(fd)
    return _OUTLETS[fd]


def write(fd: int, data: bytes) -> None:
    outlet(fd).write(data)


def pump() -> None:
    """Retry what is waiting (supervisord's periodic tick calls this)."""
    for o in list(_OUTLETS.values()):
        o.pump()


def finish(wait: float = FINISH_WAIT) -> None:
    """At exit: give the readers ``wait`` seconds at most, then count what is left and say the total."""
    deadline = time.monotonic() + wait
    while any(o.buffer for o in _OUTLETS.values()) and time.monotonic() < deadline:
        pump()
        time.sleep(0.01)
    for o in list(_OUTLETS.values()):
        if o.buffer:
            o._drop(bytes(o.buffer))
            o.buffer.clear()
    for o in list(_OUTLETS.values()):
        if o.dropped_bytes and o.fd != 2:
            outlet(2).write(
                f"spiffctl: dropped {o.dropped_lines} lines ({o.dropped_bytes} bytes) of output to fd {o.fd}, "
                "which was not being read\n".encode()
            )
    err = _OUTLETS.get(2)
    if err is not None:
        err.pump()
