"""One JSON log line: the fields every line has, built with the C encoder."""

from __future__ import annotations

import json
import time

LOGGER = "spiffctl"
_encode = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "), default=str).encode


def timestamp(now: float | None = None) -> str:
    """RFC 3339 in UTC with milliseconds: ``2026-12-04T21:24:14.123Z``."""
    now = time.time() if now is None else now
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def encode(fields: dict[str, object]) -> str:
    return _encode(fields)


def own_line(
    message: str,
    level: str,
    role: str | None,
    event: str | None = None,
    fields: dict[str, object] | None = None,
    *,
    logger: str = LOGGER,
) -> str:
    """spiffctl's own line: timestamp, level, logger, message, role, then the event and its fields
    (which never replace the five above)."""
    record: dict[str, object] = {"timestamp": timestamp(), "level": level, "logger": logger, "message": message}
    record["role"] = role
    if event is not None:
        record["event"] = event
        for name, value in (fields or {}).items():
            record.setdefault(name, value)
    return encode(record)
