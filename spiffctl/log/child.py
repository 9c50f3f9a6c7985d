"""The all-in-one's roles' lines as JSON: a role's JSON object stays one object, with ``role``
added; any other line is wrapped; a line too long for a log pipeline comes out in numbered parts.

Lines arrive here complete and already scrubbed of secrets (:class:`LinePrefixer` does both
before it writes), so a secret inside a JSON line is masked as ``***`` inside its string and the
line still parses. The common case, every line of a chunk a JSON object (the backend in
production), is checked with one C-level parse of the whole chunk rather than one per line.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable

from spiffctl.allinone.logprefix import LinePrefixer, write_all
from spiffctl.log.record import timestamp

# Docker's json-file driver and containerd cut lines at 16 KiB, and Fluent Bit's default buffer
# is 32 KiB: no output line (a whole object, envelope included) is longer than this.
LINE_LIMIT = 16 * 1024
_ENVELOPE = 256  # room for role, stream, timestamp, part and parts around a part's message
_BLANKS = b" \t\r"
_dumps = json.JSONEncoder(ensure_ascii=False).encode
_string: Callable[[str], str] = json.encoder.encode_basestring  # the C encoder, no ASCII escaping


def _is_object_batch(lines: list[bytes]) -> list[object] | None:
    """Every line parsed, when each is exactly one JSON object (else None: look line by line)."""
    try:
        values = json.loads(b"[" + b",".join(lines) + b"]")
    except ValueError:
        return None
    if len(values) != len(lines) or not all(type(v) is dict for v in values):
        return None  # "1, 2" on one line parses as two values
    return values  # type: ignore[no-any-return]


def _object(line: bytes) -> dict[str, object] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if type(value) is dict else None


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


class JsonLines(LinePrefixer):
    """:class:`LinePrefixer` whose lines come out as JSON objects (``SPIFFCTL_LOG_FORMAT=json``)."""

    def write(self, role: str, channel: str, text: bytes) -> None:
        lines = [line.strip(_BLANKS) for line in text.split(b"\n")]
        head = b'{"role": ' + _dumps(role).encode() + b", "
        values = _is_object_batch(lines)
        out = []
        stamp = timestamp()  # one per chunk: the lines of a chunk arrived together
        plain = _wrapped(stamp, role, channel, "")[:-4]  # the envelope up to the message's value
        for i, line in enumerate(lines):
            value = values[i] if values is not None else _object(line) if line[:1] == b"{" else None
            if len(line) > LINE_LIMIT - len(head):
                out.append(self._parts(role, channel, line, stamp))
            elif value is None:
                out.append(plain + _string(line.decode("utf-8", "replace")).encode("utf-8", "surrogatepass") + b"}\n")
            elif "role" in value:  # type: ignore[operator]
                out.append(line + b"\n")
            else:
                out.append((head + line[1:] if value else head[:-2] + b"}") + b"\n")
        write_all(self.fds.get(channel, 1), b"".join(out))

    def _parts(self, role: str, channel: str, line: bytes, stamp: str) -> bytes:
        pieces = split(line.decode("utf-8", "replace"), LINE_LIMIT - _ENVELOPE - len(role))
        return b"".join(
            _wrapped(stamp, role, channel, piece, part=n, parts=len(pieces)) for n, piece in enumerate(pieces, 1)
        )


def _wrapped(stamp: str, role: str, channel: str, message: str, **more: int) -> bytes:
    record = {"timestamp": stamp, "role": role, "stream": channel, "message": message, **more}
    return _dumps(record).encode("utf-8", "surrogatepass") + b"\n"
