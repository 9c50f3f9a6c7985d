"""Role-prefixed output: ``api | <line>`` for every line a role writes, on the same stream.

Why inside supervisord rather than a prefixing wrapper process per role: supervisord already
reads every program's stdout and stderr through pipes (it always does), so the prefix costs no
process, no extra pipe hop and no memory beyond a partial line per stream. A wrapper would cost
one resident Python interpreter per role (each against the 45 MB PSS budget for supervision),
and it would sit between supervisord and the role: it would have to forward signals, turn a
signal death into an exit code and survive the process-group kill long enough to report it.
supervisord hands the chunks it reads to in-process subscribers as ``ProcessLog`` events
(``stdout_events_enabled``), synchronously and without the bounded buffer that out-of-process
event listeners have, so no line is ever dropped. Chunks do not respect line boundaries; the
incomplete tail of each stream is kept until its newline (or the role's exit) arrives.
"""

from __future__ import annotations

from spiffctl.allinone import dropwriter
from spiffctl.util.redact import Redactor, redact_urls_in_bytes
from spiffctl.util.scrub import StreamScrubber

# A role that never writes a newline must not grow our memory without bound.
MAX_PARTIAL = 64 * 1024
SEPARATOR = b" | "


def write_all(fd: int, data: bytes) -> None:
    # Never blocks: a stdout nobody reads must not stall supervision (see dropwriter).
    dropwriter.write(fd, data)


class LinePrefixer:
    """Splits chunks into lines and writes each line, scrubbed of secrets, with its role's prefix
    to fd 1 or 2.

    Each stream is scrubbed as a stream (:class:`spiffctl.util.scrub.StreamScrubber`) before it is cut
    into lines: a secret split by a chunk boundary, or sitting across the cut of a line longer
    than :data:`MAX_PARTIAL`, is still seen whole. URLs are then redacted structurally per line.
    """

    def __init__(self, fds: dict[str, int] | None = None, scrub: Redactor | None = None) -> None:
        self.fds = fds if fds is not None else {"stdout": 1, "stderr": 2}
        self.scrub = scrub
        self.partial: dict[tuple[str, str], bytes] = {}
        self.streams: dict[tuple[str, str], StreamScrubber] = {}

    def feed(self, role: str, channel: str, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8", "replace")
        if not data:
            return
        key = (role, channel)
        if self.scrub is not None:
            # (setdefault alone would build a scrubber for every chunk, to throw it away)
            stream = self.streams.get(key) or self.streams.setdefault(key, self.scrub.stream())
            data = stream.feed(data)
        buffered = self.partial.pop(key, b"") + data
        complete, newline, tail = buffered.rpartition(b"\n")
        if not newline:
            complete, tail = b"", buffered
        text = self._clean(complete) if newline else b""
        if len(tail) > MAX_PARTIAL:
            text = (text + b"\n" if newline else b"") + self._clean(tail)
            newline, tail = b"\n", b""
        if tail:
            self.partial[key] = tail
        if newline:
            self.write(role, channel, text)

    def flush(self, role: str) -> None:
        """The role ended: write what is left of its lines (no newline came)."""
        for channel in ("stdout", "stderr"):
            stream = self.streams.pop((role, channel), None)
            tail = self.partial.pop((role, channel), b"") + (stream.flush() if stream else b"")
            if tail:
                self.write(role, channel, self._clean(tail))

    def write(self, role: str, channel: str, text: bytes) -> None:
        """Write complete, scrubbed lines (``text`` holds them without the last newline)."""
        prefix = role.encode() + SEPARATOR
        write_all(self.fds.get(channel, 1), prefix + text.replace(b"\n", b"\n" + prefix) + b"\n")

    def _clean(self, data: bytes) -> bytes:
        # Values were masked on the stream; what is left is the structural pass over URLs.
        return redact_urls_in_bytes(data) if self.scrub else data
