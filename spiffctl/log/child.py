"""The all-in-one's roles' lines as JSON: a role's JSON object stays one object, with ``role``
added; any other line is wrapped; a line too long for a log pipeline comes out in numbered parts.

Lines arrive here complete and already scrubbed of secrets (:class:`LinePrefixer` does both
before it writes), so a secret inside a JSON line is masked as ``***`` inside its string and the
line still parses. A chunk of one kind of line, every line a JSON object (the backend in
production) or none, is parsed and written with a few C calls rather than a few per line.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable
from functools import cached_property

from spiffctl.allinone.logprefix import LinePrefixer, write_all
from spiffctl.log.record import timestamp

# Docker's json-file driver and containerd cut lines at 16 KiB, and Fluent Bit's default buffer
# is 32 KiB: no output line (a whole object, envelope included) is longer than this.
LINE_LIMIT = 16 * 1024
_ENVELOPE = 256  # room for role, stream, timestamp, part and parts around a part's message
_BLANKS = b" \t\r"
_dumps = json.JSONEncoder(ensure_ascii=False).encode
_string: Callable[[str], str] = json.encoder.encode_basestring  # the C encoder, no ASCII escaping
# Messages encoded in one C call: a JSON list with a newline between its items. A newline inside
# a message is escaped, so each raw newline of the list ends one item.
_dumps_lines = json.JSONEncoder(ensure_ascii=False, separators=("\n", ": ")).encode

# json.loads's parse and checks, but an object comes back as its (key, value) pairs rather than a
# dict: building the dicts was half the time. An object is the one value parsed as a tuple.
_pairs_decoder = json.JSONDecoder(object_pairs_hook=tuple)
Pairs = tuple[tuple[str, object], ...]


def _loads(data: bytes) -> object:
    # json.loads(data) with the decoder above. Nesting deep enough to exhaust the C stack guard
    # is no object we would pass on either.
    try:
        return _pairs_decoder.decode(data.decode(json.detect_encoding(data), "surrogatepass"))
    except (ValueError, RecursionError):
        return None


def _objects(lines: list[bytes]) -> list[Pairs] | None:
    """Each line's pairs when every line is exactly one JSON object: one parse of the chunk."""
    values = _loads(b"[" + b",".join(lines) + b"]")
    # "1, 2" on one line parses as two values.
    if not isinstance(values, list) or len(values) != len(lines) or set(map(type, values)) != {tuple}:
        return None
    return values


def _object(line: bytes) -> Pairs | None:
    value = _loads(line) if line[:1] == b"{" else None
    return value if type(value) is tuple else None


def _may_name_a_role(text: bytes) -> bool:
    # A "role" key is the bytes "role" in quotes, or written with \u escapes. (Tested in two
    # steps: a single "\\" is found much faster than the two bytes "\\u".)
    return b'"role"' in text or (b"\\" in text and b"\\u" in text)


def split(text: str, budget: int) -> list[str]:
    """``text`` in pieces whose JSON string form fits ``budget`` bytes, cut between characters."""
    pieces = []
    while text:
        n = min(len(text), budget)
        while True:
            size = len(_dumps(text[:n]).encode("utf-8", "surrogatepass"))
            if size <= budget or n == 1:
                break
            n = max(1, n * budget // size - 1)
        pieces.append(text[:n])
        text = text[n:]
    return pieces


class _Envelope:
    """What one chunk's lines are written with: the role, the stream and the chunk's time."""

    # not a dataclass: PID 1 (supervisord) imports this module, and dataclasses costs it ~1 MB
    def __init__(self, role: str, channel: str, stamp: str) -> None:
        self.role = role
        self.channel = channel
        self.stamp = stamp  # one per chunk: the lines of a chunk arrived together

    @cached_property
    def head(self) -> bytes:
        """A role's object begins with this instead of its "{"."""
        return b'{"role": ' + _dumps(self.role).encode() + b", "

    @cached_property
    def plain(self) -> bytes:
        """A wrapped line's object up to its message's value."""
        return _wrapped(self.stamp, self.role, self.channel, "")[:-4]

    def objects(self, lines: list[bytes]) -> bytes:
        """Lines that are all non-empty objects without a role: each one gets ours."""
        head = self.head
        return head + (b"\n" + head).join([line[1:] for line in lines]) + b"\n"

    def messages(self, lines: list[bytes]) -> bytes:
        """Lines that are all plain text: each one wrapped as a message."""
        plain = self.plain
        # One decode of the chunk is the decode of each line: "\n" never belongs to a UTF-8 sequence.
        listed = _dumps_lines(b"\n".join(lines).decode("utf-8", "replace").split("\n"))[1:-1]
        return plain + listed.encode("utf-8", "surrogatepass").replace(b"\n", b"}\n" + plain) + b"}\n"

    def line(self, line: bytes, pairs: Pairs | None) -> bytes:
        """Any one line (``pairs`` when it is an object)."""
        if len(line) > LINE_LIMIT - len(self.head):
            return self.parts(line)
        if pairs is None:
            return self.plain + _string(line.decode("utf-8", "replace")).encode("utf-8", "surrogatepass") + b"}\n"
        if any(key == "role" for key, _ in pairs):
            return line + b"\n"
        return (self.head + line[1:] if pairs else self.head[:-2] + b"}") + b"\n"

    def parts(self, line: bytes) -> bytes:
        pieces = split(line.decode("utf-8", "replace"), LINE_LIMIT - _ENVELOPE - len(self.role))
        return b"".join(
            _wrapped(self.stamp, self.role, self.channel, piece, part=n, parts=len(pieces))
            for n, piece in enumerate(pieces, 1)
        )


class JsonLines(LinePrefixer):
    """:class:`LinePrefixer` whose lines come out as JSON objects (``SPIFFCTL_LOG_FORMAT=json``)."""

    def write(self, role: str, channel: str, text: bytes) -> None:
        lines = [line.strip(_BLANKS) for line in text.split(b"\n")]
        envelope = _Envelope(role, channel, timestamp())
        values = _objects(lines) if lines[0][:1] == b"{" else None  # else not every line is one
        limit = LINE_LIMIT - len(envelope.head)
        if len(text) <= limit or max(map(len, lines)) <= limit:  # no line to cut in parts
            if values is not None and all(values) and not _may_name_a_role(text):
                write_all(self.fds.get(channel, 1), envelope.objects(lines))
                return
            if values is None and not any(line[:1] == b"{" for line in lines):
                write_all(self.fds.get(channel, 1), envelope.messages(lines))
                return
        every = values if values is not None else [_object(line) for line in lines]
        write_all(self.fds.get(channel, 1), b"".join(map(envelope.line, lines, every)))


def _wrapped(stamp: str, role: str, channel: str, message: str, **more: int) -> bytes:
    record = {"timestamp": stamp, "role": role, "stream": channel, "message": message, **more}
    return _dumps(record).encode("utf-8", "surrogatepass") + b"\n"
