"""The lease's transitions as log events (catalogue: docs/logs.md): the machine names the event
and its own fields, this adds where the lease lives, its TTL and who holds it."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

from spiffctl import log

# Who "we" are when we hold the lease, as an operator would look for the replica.
ME = f"{socket.gethostname()} pid {os.getpid()}"


def lease_event(
    text: str, name: str, fields: dict[str, object], *, store: str, ttl: float, redact: Callable[[str], str]
) -> log.Event:
    event = log.Event(text, name)
    event.fields = {"epoch": None, "store": redact(store), "ttl": ttl, "holder": ME}
    event.fields.update((k, redact(v) if isinstance(v, str) else v) for k, v in fields.items())
    return event


def last_event(event: log.Event) -> dict[str, object]:
    """What the state file keeps of the latest transition (``status --json`` shows it)."""
    return {"event": event.name, "epoch": event.fields.get("epoch"), "message": str(event), "at": time.time()}
