"""spiffctl's own log lines, in the format the operator chose (see docs/logs.md).

Every line spiffctl writes about itself goes through :func:`line`: ``spiffctl: <message>`` in
text (today's format, unchanged), one JSON object in JSON. An :class:`Event` is a message that
also carries an event name and fields; it is a ``str``, so code that passes messages around as
text (``say`` callbacks, tests collecting them) needs no change, and text mode prints it as the
plain message it always was.
"""

from __future__ import annotations

import os
import sys

from spiffctl.log.choice import JSON, choose
from spiffctl.log.record import own_line

__all__ = ["Event", "line", "say", "set_role", "use_json"]

_ROLE: list[str] = []


class Event(str):
    """A message with an event name and fields (JSON mode writes them; text mode only the message)."""

    name: str
    fields: dict[str, object]
    json_only: bool  # new information a text reader never had: text mode stays as it was
    level: str | None

    def __new__(
        cls, message: str, name: str, *, json_only: bool = False, level: str | None = None, **fields: object
    ) -> Event:
        event = super().__new__(cls, message)
        event.name = name
        event.fields = fields
        event.json_only = json_only
        event.level = level
        return event


def set_role(role: str) -> None:
    """The role this process speaks for (``run`` sets it before its first line)."""
    _ROLE[:] = [role]


def role() -> str | None:
    # Under the all-in-one each role's spiffctl gets SPIFFCTL_ROLE from its program's environment.
    return _ROLE[0] if _ROLE else os.environ.get("SPIFFCTL_ROLE") or None


def use_json() -> bool:
    """The format for this process; a bad value falls back to text here (``run`` refuses it, 78)."""
    try:
        return choose(os.environ) == JSON
    except ValueError:
        return False


def line(message: str, *, level: str | None = None) -> str | None:
    """The line for ``message`` (no newline), or None when it is not written in this format.

    ``level`` defaults to the event's, else WARNING for ``warning: ...`` messages, else INFO. An
    event's ``role`` field names the role it is about (the all-in-one's supervisor speaks for all).
    """
    if level is None and isinstance(message, Event):
        level = message.level
    if level is None:
        level = "WARNING" if message.startswith("warning: ") else "INFO"
    if not use_json():
        if isinstance(message, Event) and message.json_only:
            return None
        return f"spiffctl: {message}"
    if isinstance(message, Event):
        subject = message.fields.get("role")
        return own_line(
            str(message), level, subject if isinstance(subject, str) else role(), message.name, message.fields
        )
    return own_line(str(message), level, role())


def say(message: str, *, level: str | None = None) -> None:
    """Write ``message`` to stderr in the chosen format."""
    text = line(message, level=level)
    if text is not None:
        print(text, file=sys.stderr, flush=True)
