"""Ports on 127.0.0.1 for tests: a free one, an open one, one that refuses, one that never answers."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Literal, TypeVar

from tests.support.poll import wait_until

LOCALHOST = "127.0.0.1"
H = TypeVar("H", bound="_HeldPort")


def port_open(port: int, host: str = LOCALHOST, timeout: float = 0.5) -> bool:
    """True when a TCP connect to ``host:port`` succeeds within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(port: int, host: str = LOCALHOST, timeout: float = 10.0) -> None:
    """Wait (bounded) until something accepts TCP connections on ``host:port``."""
    wait_until(lambda: port_open(port, host), timeout, what=f"port {host}:{port} open")


_issued_ports: set[int] = set()
_port_lock = threading.Lock()


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port that is free right now and that this process has not handed out before.

    The kernel picks it (bind to port 0); there is an unavoidable window before the caller binds it.
    """
    with _port_lock:
        for _ in range(50):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
            if port not in _issued_ports:
                _issued_ports.add(port)
                return port
    raise RuntimeError("no free port found")


class _HeldPort:
    """A port this object holds until :meth:`close` (or the end of its ``with`` block)."""

    host: str
    port: int

    def url(self, scheme: str, path: str = "/") -> str:
        return f"{scheme}://{self.host}:{self.port}{path}"

    def close(self) -> None:
        raise NotImplementedError

    def __int__(self) -> int:
        return self.port

    def __enter__(self: H) -> H:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ClosedPort(_HeldPort):
    """A port on 127.0.0.1 that refuses connections (RST) for as long as this object lives.

    The port is bound but not listening, so nobody else can take it meanwhile. ``int(closed)`` or
    ``closed.port`` gives the number; ``url(scheme)`` a URL pointing at it.
    """

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((LOCALHOST, 0))
        self.host = LOCALHOST
        self.port: int = self._sock.getsockname()[1]

    def close(self) -> None:
        self._sock.close()


class Blackhole(_HeldPort):
    """A TCP listener on a free port of 127.0.0.1 that never answers.

    ``mode="accept"`` (default): connections are accepted (the handshake completes, the client's
    connect succeeds) and then held open without a byte read or sent, until :meth:`close`. Clients
    hang in their first read/handshake: a server that "accepts and never answers".

    ``mode="drop"``: the accept queue is kept full, so the kernel drops further SYNs; the client's
    ``connect()`` itself hangs until its own timeout: a host that "swallows packets".

    ``connections`` counts the connections accepted (``accept`` mode).
    """

    def __init__(self, mode: Literal["accept", "drop"] = "accept") -> None:
        self.mode = mode
        self.host = LOCALHOST
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((LOCALHOST, 0))
        self.port: int = self._listener.getsockname()[1]
        self._held: list[socket.socket] = []
        self._closed = threading.Event()
        self.connections = 0
        if mode == "accept":
            self._listener.listen(128)
            self._thread = threading.Thread(target=self._accept_loop, name=f"blackhole-{self.port}", daemon=True)
            self._thread.start()
        else:
            # Backlog 0 lets exactly one connection queue up; fill it (and one in SYN-RECV) ourselves.
            self._listener.listen(0)
            for _ in range(2):
                filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect_ex((LOCALHOST, self.port))
                self._held.append(filler)
            time.sleep(0.05)

    def _accept_loop(self) -> None:
        self._listener.settimeout(0.2)
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)
            self.connections += 1

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        for s in self._held:
            with contextlib.suppress(OSError):
                s.close()
        self._held.clear()
