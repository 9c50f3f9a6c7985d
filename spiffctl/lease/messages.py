"""What spiffctl and its watchdog say to each other over their two pipes, as typed messages.

Control pipe, spiffctl -> watchdog:

* :class:`Fence` ``until``: the lease is valid until ``until`` (on :func:`spiffctl.lease.clock.now`).
  The watchdog SIGTERMs the script's group ``term_grace`` before it and SIGKILLs it at it.
* :class:`Stop` ``grace``: stop the script now, SIGKILL after ``grace`` seconds (never later than
  the fence). The pipe closing means the same as ``Stop(term_grace)``: spiffctl died.

Report pipe, watchdog -> spiffctl:

* :class:`Started` ``pid``: the script runs; its pid is also its process group.
* :class:`Exited` ``code how``: the script's whole process group is gone. ``code`` as a shell
  reports it (128+N for signal N); ``how`` says who ended it (:class:`How`).
* :class:`Failed` ``code reason``: the script could not be executed (127 missing, 126 not
  executable); the watchdog exits with ``code``.

A warm child (:mod:`spiffctl.lease.warm`, started by ``watchdog --warm``) adds one control message
and two reports:

* :class:`Go` ``until epoch``: arm the fence at ``until``, then tell the child to start the scheduler.
* :class:`Loaded`: the child created the app and waits; :class:`LoadFailed` ``unusable reason``:
  it could not (``unusable``: an entry point is missing, use the script instead).

Wire format: one line per message, ``<tag> <field> ...``, fields in declaration order; a ``str``
field comes last and may hold spaces. Floats are written with ``repr`` so they come back bit for
bit; a non-finite float is refused, because a NaN deadline would never be reached.

Stdlib only, no I/O: the watchdog (``python -I -m spiffctl.lease.watchdog``) and the pure state
machine both import it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import Enum

TYPE_CHECKING = False  # not typing's: the watchdog never imports typing (a smaller process to keep around)
if TYPE_CHECKING:
    from collections.abc import Callable


class ProtocolError(ValueError):
    """A line that is not a valid message of the expected kind: a bug on the other end."""


class How(Enum):
    OWN = "own"  # the script exited by itself
    STOPPED = "stopped"  # after a Stop, or spiffctl's end of the control pipe closed
    FENCED = "fenced"  # the fence's deadline passed (or came too close to start it)


@dataclass(frozen=True)
class Fence:
    TAG = "fence"  # not annotated: a class attribute, not a field
    until: float


@dataclass(frozen=True)
class Stop:
    TAG = "stop"  # not annotated: a class attribute, not a field
    grace: float


@dataclass(frozen=True)
class Go:
    """A warm child may start the scheduler: the lease (epoch ``epoch``) is valid until ``until``.

    The watchdog arms its fence at ``until`` first, then passes ``go`` on, unless the fence's
    SIGTERM time has already come (then the fence kills the child instead)."""

    TAG = "go"  # not annotated: a class attribute, not a field
    until: float
    epoch: int


@dataclass(frozen=True)
class Loaded:
    """The warm child created the app; it waits for ``go``."""

    TAG = "loaded"  # not annotated: a class attribute, not a field


@dataclass(frozen=True)
class LoadFailed:
    """The warm child could not create the app (``unusable``: an entry point cannot be imported)."""

    TAG = "loadfailed"  # not annotated: a class attribute, not a field
    unusable: bool
    reason: str


@dataclass(frozen=True)
class Started:
    TAG = "started"  # not annotated: a class attribute, not a field
    pid: int


@dataclass(frozen=True)
class Exited:
    TAG = "exited"  # not annotated: a class attribute, not a field
    code: int
    how: How


@dataclass(frozen=True)
class Failed:
    TAG = "failed"  # not annotated: a class attribute, not a field
    code: int
    reason: str


Control = Fence | Stop | Go
Report = Started | Exited | Failed | Loaded | LoadFailed
Message = Control | Report

CONTROL: tuple[type[Control], ...] = (Fence, Stop, Go)
REPORTS: tuple[type[Report], ...] = (Started, Exited, Failed, Loaded, LoadFailed)


def _finite(value: float) -> bool:
    return value == value and abs(value) != float("inf")  # NaN is the one value unequal to itself


def _text(value: object) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, float):
        if not _finite(value):
            raise ProtocolError(f"refusing to send a non-finite number: {value!r}")
        return repr(value)
    return " ".join(str(value).split())  # one line, whatever the text held


def encode(message: Message) -> bytes:
    parts = [message.TAG, *(_text(getattr(message, f.name)) for f in fields(message))]
    return (" ".join(parts) + "\n").encode()


def _finite_float(text: str) -> float:
    value = float(text)
    if not _finite(value):
        raise ValueError(f"not a finite number: {text!r}")
    return value


def _bool(text: str) -> bool:
    if text not in ("True", "False"):
        raise ValueError(f"not a boolean: {text!r}")
    return text == "True"


# Field types as written in the classes above (annotations are strings here).
_PARSERS: dict[str, Callable[[str], object]] = {
    "float": _finite_float,
    "int": int,
    "str": str,
    "How": How,
    "bool": _bool,
}


def decode(line: bytes, kinds: tuple[type[Message], ...]) -> Message:
    """One message of one of ``kinds`` from one line (without its newline); :class:`ProtocolError` otherwise."""
    text = line.decode(errors="replace")
    tag, _, rest = text.partition(" ")
    by_tag = {k.TAG: k for k in kinds}
    if tag not in by_tag:
        raise ProtocolError(f"unexpected message {text[:80]!r}")
    kind = by_tag[tag]
    wanted = fields(kind)
    values = rest.split(" ", len(wanted) - 1) if wanted else []
    if len(values) != len(wanted):
        raise ProtocolError(f"{tag}: expected {len(wanted)} fields, got {text[:80]!r}")
    make: Callable[..., Message] = kind  # each field's parser gives the type its annotation names
    try:
        return make(**{f.name: _PARSERS[str(f.type)](value) for f, value in zip(wanted, values, strict=True)})
    except ValueError as e:
        raise ProtocolError(f"{tag}: {e}") from None


class Reader:
    """Splits a byte stream into messages, keeping an incomplete last line for the next chunk."""

    def __init__(self, kinds: tuple[type[Message], ...]) -> None:
        self._kinds = kinds
        self._buffer = b""

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        return [decode(line, self._kinds) for line in lines]
