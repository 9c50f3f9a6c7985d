"""Known secret values, in every form a program prints them, masked in a byte stream.

A program rarely prints a password the way the operator typed it: a URL builder percent-encodes
it (``quote``, ``quote(x, safe="")``, ``quote_plus`` with ``+`` for a space, upper- or lower-case
hex), a log line quotes it with ``repr`` or JSON, and a multi-line secret (a PEM key) comes out
one line at a time. Each secret therefore becomes one regular expression that accepts, at every
character, the raw character or any percent-encoding of it, plus its repr/JSON escaped forms; all
secrets together are one compiled alternation, so a chunk of output is searched once whatever the
number of secrets.

:class:`StreamScrubber` applies it to a stream rather than to reads: it holds back the last
``longest match - 1`` raw bytes of an unfinished line, so a secret cut by any read boundary, in
a line of any length, is still seen whole.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator

MASK = b"***"
# Short values are left alone: scrubbing "a" or "ab" would mangle every line while protecting
# nothing a reader could not guess. URLs are still redacted structurally (spiffctl.util.redact).
MIN_SCRUB_LENGTH = 4
# Characters no percent-encoder touches (RFC 3986 unreserved): only their raw form is printed.
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def _hex_digit(n: int) -> bytes:
    digit = b"%X" % n
    return digit if digit.isdigit() else b"[" + digit + digit.lower() + b"]"


def _percent(byte: int) -> bytes:
    return b"%" + _hex_digit(byte >> 4) + _hex_digit(byte & 15)


def _char(c: str, raw_newline: bool) -> tuple[bytes, int]:
    """A regex for one character in any printed form, and the longest match in bytes."""
    raw = c.encode("utf-8", "surrogateescape")
    if len(raw) == 1 and raw[0] in _UNRESERVED:
        return re.escape(raw), 1
    encoded = b"".join(_percent(b) for b in raw)
    alternatives = ([] if c == "\n" and not raw_newline else [re.escape(raw)]) + [encoded]
    alternatives += [rb"\+"] if c == " " else []
    return b"(?:" + b"|".join(alternatives) + b")", 3 * len(raw)


def forms(secret: str, raw_newline: bool = True) -> list[tuple[bytes, int]]:
    """Regexes (with their longest match in bytes) for ``secret`` as programs print it."""
    parts = [_char(c, raw_newline) for c in secret]
    out = [(b"".join(p for p, _ in parts), sum(n for _, n in parts))]
    return out + [(re.escape(raw), len(raw)) for raw in _escaped(secret)]


def _escaped(secret: str) -> list[bytes]:
    """``secret`` as repr and JSON print it, where that differs from the raw form."""
    escaped = {repr(secret)[1:-1], json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    return [text.encode("utf-8", "surrogateescape") for text in sorted(escaped - {secret})]


def anchors(secret: str) -> list[bytes]:
    """A literal piece of each printed form of ``secret``: every match of the form contains it.

    In the raw/percent form only the unreserved characters are literal (:func:`_char`): its
    piece is their longest run (empty when the secret has none). Escaped forms are literal whole.
    """
    runs = _LITERAL_RUN.findall(secret.encode("utf-8", "surrogateescape"))
    return [max(runs, key=len, default=b""), *_escaped(secret)]


_LITERAL_RUN = re.compile(rb"[A-Za-z0-9_.~-]+")  # _UNRESERVED


def expand(secrets: Iterable[str]) -> set[str]:
    """The secrets worth scrubbing: long enough, and each line of a multi-line one on its own."""
    out: set[str] = set()
    for secret in secrets:
        lines = secret.splitlines()
        # A line may come out indented or with its line ending changed: its stripped text only.
        for value in (secret, *(line.strip() for line in lines if len(lines) > 1)):
            if len(value) >= MIN_SCRUB_LENGTH:
                out.add(value)
    return out


# sre tries an alternation at every byte that may begin one of its branches: with six secrets
# beginning with common letters, one byte in ten of a log. bytes.find skips ahead instead, so with
# few secrets it is faster to find a literal piece of each form (its anchor) and run the
# alternation only around the pieces found. With many, one pass of the alternation is cheaper
# than one find per piece; a short piece would be found everywhere.
MAX_ANCHORS = 16
MIN_ANCHOR = 3


class Pattern:
    """All known secrets as one compiled alternation over bytes."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: frozenset[str] = frozenset()
        self.regex: re.Pattern[bytes] | None = None
        # For streams: no match spans a raw newline (each line of a multi-line secret is a secret
        # of its own), so a stream can release every complete line at once.
        self.in_line: re.Pattern[bytes] | None = None
        self.longest = 0  # the longest possible match, in bytes
        self.anchors: tuple[bytes, ...] | None = None  # see MAX_ANCHORS; None: scan with in_line
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        self.secrets |= expand(secrets)
        self.regex, self.longest = _alternation([f for s in self.secrets for f in forms(s)])
        self.in_line, _ = _alternation([f for s in self.secrets for f in forms(s, raw_newline=False)])
        pieces = {piece for s in self.secrets for piece in anchors(s)}
        usable = pieces and len(pieces) <= MAX_ANCHORS and min(map(len, pieces)) >= MIN_ANCHOR
        self.anchors = tuple(sorted(pieces)) if usable else None

    def finditer(self, data: bytes) -> Iterator[re.Match[bytes]]:
        """The matches of :attr:`in_line` in ``data``, exactly as ``in_line.finditer(data)`` finds them.

        With anchors the alternation runs only in the regions around them. Every match lies
        inside one region (it holds its form's anchor, and the window around that anchor spans
        any match holding it), and the pattern has no ``^``, ``$`` or lookaround that would see
        past a region's ends: each region yields what a whole scan yields there.
        """
        regex = self.in_line
        if regex is None:
            return iter(())
        if self.anchors is None:
            return regex.finditer(data)
        return (m for start, end in self._regions(data) for m in regex.finditer(data, start, end))

    def _regions(self, data: bytes) -> list[tuple[int, int]]:
        """Where matches can be: a window around each anchor found, overlapping windows merged."""
        windows = []
        for piece in self.anchors or ():
            at = data.find(piece)
            while at != -1:
                # A match holding the piece at `at` starts and ends within `longest` bytes of it.
                windows.append((max(0, at + len(piece) - self.longest), at + self.longest))
                at = data.find(piece, at + 1)
        windows.sort()
        regions: list[tuple[int, int]] = []
        for start, end in windows:
            if regions and start <= regions[-1][1]:
                regions[-1] = (regions[-1][0], max(end, regions[-1][1]))
            else:
                regions.append((start, end))
        return regions

    def sub(self, data: bytes) -> bytes:
        return self.regex.sub(MASK, data) if self.regex is not None else data


def _alternation(every: list[tuple[bytes, int]]) -> tuple[re.Pattern[bytes] | None, int]:
    # Longest first, so a secret that contains another is masked whole.
    every.sort(key=lambda f: (-f[1], f[0]))
    return (re.compile(b"|".join(p for p, _ in every)) if every else None), max((n for _, n in every), default=0)


class StreamScrubber:
    """Masks secrets in a byte stream cut anywhere: :meth:`feed` returns what is safe to write."""

    def __init__(self, pattern: Pattern) -> None:
        self.pattern = pattern
        self.held = b""

    def feed(self, data: bytes) -> bytes:
        regex = self.pattern.in_line
        if regex is None:
            return data
        data = self.held + data
        # A match starting at or after `cut` might continue in bytes not read yet: hold it back,
        # but never a complete line (no match spans a newline).
        cut = max(len(data) - (self.pattern.longest - 1), data.rfind(b"\n") + 1, 0)
        out: list[bytes] = []
        done = 0
        for m in self.pattern.finditer(data):
            if m.start() >= cut:
                break
            out += [data[done : m.start()], MASK]
            done = m.end()
        end = max(cut, done)
        out.append(data[done:end])
        self.held = data[end:]
        return b"".join(out)

    def flush(self) -> bytes:
        """The stream ended: what was held back, scrubbed."""
        held, self.held = self.held, b""
        return self.pattern.in_line.sub(MASK, held) if self.pattern.in_line is not None else held
