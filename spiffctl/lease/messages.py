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

Stdlib only, no I/O: the watchdog (``python -I -S``, see :data:`spiffctl.lease.guard.WATCHDOG`) and the pure state
machine both import it.
"""

from __future__ import annotations

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


class _Message:
    """A frozen record compared by kind and fields, as a frozen dataclass would be. Not one: the
    watchdog imports this module, and ``dataclasses`` (with ``inspect``) would cost it ~1.5 MB."""

    TAG = ""
    __slots__: tuple[str, ...] = ()  # the fields, in wire order

    def __init__(self, *values: object) -> None:
        for name, value in zip(self.__slots__, values, strict=True):
            object.__setattr__(self, name, value)

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot set {name}")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in zip(self.__slots__, self._values(), strict=True))
        return f"{type(self).__name__}({shown})"


class Fence(_Message):
    TAG = "fence"
    __slots__ = ("until",)
    until: float

    def __init__(self, until: float) -> None:
        super().__init__(until)


class Stop(_Message):
    TAG = "stop"
    __slots__ = ("grace",)
    grace: float

    def __init__(self, grace: float) -> None:
        super().__init__(grace)


class Go(_Message):
    """A warm child may start the scheduler: the lease (epoch ``epoch``) is valid until ``until``.

    The watchdog arms its fence at ``until`` first, then passes ``go`` on, unless the fence's
    SIGTERM time has already come (then the fence kills the child instead)."""

    TAG = "go"
    __slots__ = ("until", "epoch")  # noqa: RUF023  # wire order
    until: float
    epoch: int

    def __init__(self, until: float, epoch: int) -> None:
        super().__init__(until, epoch)


class Loaded(_Message):
    """The warm child created the app; it waits for ``go``."""

    TAG = "loaded"
    __slots__ = ()


class LoadFailed(_Message):
    """The warm child could not create the app (``unusable``: an entry point cannot be imported)."""

    TAG = "loadfailed"
    __slots__ = ("unusable", "reason")  # noqa: RUF023  # wire order
    unusable: bool
    reason: str

    def __init__(self, unusable: bool, reason: str) -> None:
        super().__init__(unusable, reason)


class Started(_Message):
    TAG = "started"
    __slots__ = ("pid",)
    pid: int

    def __init__(self, pid: int) -> None:
        super().__init__(pid)


class Exited(_Message):
    TAG = "exited"
    __slots__ = ("code", "how")
    code: int
    how: How

    def __init__(self, code: int, how: How) -> None:
        super().__init__(code, how)


class Failed(_Message):
    TAG = "failed"
    __slots__ = ("code", "reason")
    code: int
    reason: str

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)


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
    parts = [message.TAG, *(_text(value) for value in message._values())]
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
    wanted = kind.__slots__
    values = rest.split(" ", len(wanted) - 1) if wanted else []
    if len(values) != len(wanted):
        raise ProtocolError(f"{tag}: expected {len(wanted)} fields, got {text[:80]!r}")
    make: Callable[..., Message] = kind  # each field's parser gives the type its annotation names
    try:
        types = kind.__annotations__
        return make(*(_PARSERS[str(types[name])](value) for name, value in zip(wanted, values, strict=True)))
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
