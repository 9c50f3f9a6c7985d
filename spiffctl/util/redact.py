"""The one place that knows how to hide secrets.

Two complementary tools:

* :func:`redact_url` shows a URL with its password and secret-looking query values replaced by
  ``***`` (:func:`spiffctl.util.urls.display`). It never fails, even on garbage, because it runs on the
  error path for inputs we could not parse, and it never echoes a part it cannot place.
* :class:`Redactor` scrubs free text (driver error messages, child output, log lines) of every
  known secret *value*: URL passwords under every grammar that may read them, ``*_FILE``
  contents and variables whose names say they are secret. Drivers sometimes echo parts of a DSN
  back, so structural redaction alone is not enough.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Iterable, Mapping

from spiffctl.config.secrets import readable_file_secrets
from spiffctl.util import scrub, urls

MASK = urls.MASK

# Environment variables whose *value* is a secret by name.
_SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE_KEY|_KEY$|CREDENTIAL)", re.IGNORECASE)
# Variables that hold URLs which may embed a password.
_URL_NAME = re.compile(r"(_URI|_URL)$")
MIN_SCRUB_LENGTH = scrub.MIN_SCRUB_LENGTH


def redact_url(url: str, grammar: urls.Grammar = "standard") -> str:
    """``url`` as it may be shown. The standard grammar masks at least what SQLAlchemy's would:
    for text of unknown origin it is the safe choice."""
    return urls.display(url, grammar)


def quote(value: str) -> str:
    """An operator's value, quoted for a message: a URL (or anything with userinfo) never whole."""
    return repr(redact_url(value))


def quote_url(value: str) -> str:
    """A URL variable's value, quoted for a message; one that is no URL at all (a password pasted
    into the wrong variable, say) is described by its shape, never echoed."""
    if "://" in value:
        return quote(value)
    return f"a value of {len(value)} characters without scheme://"


def url_secrets(url: str) -> set[str]:
    """The secret values embedded in ``url`` (raw and percent-decoded), for :class:`Redactor`."""
    return urls.secrets(url)


def env_secrets(env: Mapping[str, str]) -> set[str]:
    """Secret values found in an environment: secret-named variables and passwords inside URLs."""
    found: set[str] = set()
    for name, value in env.items():
        if not value:
            continue
        # NAME_FILE holds a path, which the operator needs to see; its content is the secret
        # (secrets.py hands that to the Redactor).
        if _SECRET_NAME.search(name) and not _URL_NAME.search(name) and not name.endswith("_FILE"):
            found.add(value)
        if "://" in value:
            found |= url_secrets(value)
    return found


class Redactor:
    """Scrubs known secret values, in every printed form (:mod:`spiffctl.util.scrub`), out of text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.pattern = scrub.Pattern(secrets)

    @classmethod
    def for_env(cls, env: Mapping[str, str]) -> Redactor:
        """The one redactor for an environment: its secrets after ``*_FILE`` resolution."""
        return cls(resolved_secrets(env))

    def add(self, secrets: Iterable[str]) -> None:
        self.pattern.add(secrets)

    def __call__(self, text: str) -> str:
        # Known values first: a password holding a space or a quote cuts a URL short for the
        # structural pass below, which would then leave part of it in the text.
        raw = text.encode("utf-8", "surrogateescape")
        scrubbed = self.pattern.sub(raw)
        if scrubbed is not raw and scrubbed != raw:
            text = scrubbed.decode("utf-8", "surrogateescape")
        return redact_url_in_text(text) if "://" in text else text

    def scrub_bytes(self, data: bytes) -> bytes:
        """:meth:`__call__` for raw output: bytes that are not UTF-8 pass through unchanged."""
        return redact_urls_in_bytes(self.pattern.sub(data))

    def stream(self) -> scrub.StreamScrubber:
        """A scrubber for one output stream (values only; see :func:`redact_urls_in_bytes`)."""
        return scrub.StreamScrubber(self.pattern)

    @property
    def secrets(self) -> frozenset[str]:
        """The values scrubbed (each line of a multi-line one included)."""
        return self.pattern.secrets

    @property
    def longest(self) -> int:
        """Length in bytes of the longest form of a known secret (0 when none)."""
        return self.pattern.longest


def resolved_secrets(env: Mapping[str, str]) -> set[str]:
    """Every secret of ``env``: readable ``*_FILE`` contents and the secrets of the environment
    they resolve to (a URL read from a file has its password found like any other)."""
    resolved, file_secrets = readable_file_secrets(env)
    return file_secrets | env_secrets(resolved)


def redact_urls_in_bytes(data: bytes) -> bytes:
    """:func:`redact_url_in_text` for raw output (non-UTF-8 bytes pass through unchanged).

    Only the lines holding "://" are decoded and searched: in a chunk of log, one line in many.
    That changes nothing, as no URL spans a line (white space ends one, and a scheme holds none).
    """
    out: list[bytes] = []
    done = 0
    at = data.find(b"://")
    while at != -1:
        start = max(data.rfind(b"\n", done, at) + 1, done)  # where the line begins
        end = data.find(b"\n", at)
        end = len(data) if end == -1 else end
        line = redact_url_in_text(data[start:end].decode("utf-8", "surrogateescape"))
        out += [data[done:start], line.encode("utf-8", "surrogateescape")]
        done = end
        at = data.find(b"://", end)
    return b"".join([*out, data[done:]]) if out else data


# Anchored on the literal "://" (found by a fast substring search); the scheme is found by
# walking back from it. A regex with the scheme as an optional leading group would be tried at
# every position of every line the all-in-one prints: four times slower.
_URL_TAIL = re.compile(r"://[^\s'\"<>]+")
_SCHEME_CHARS = frozenset(string.ascii_letters + string.digits + "+.-")


def redact_url_in_text(text: str) -> str:
    """Redact every URL found inside a longer text."""
    out: list[str] = []
    done = 0
    for m in _URL_TAIL.finditer(text):
        start = m.start()
        while start > done and text[start - 1] in _SCHEME_CHARS:
            start -= 1
        while start < m.start() and not text[start].isalpha():  # a scheme begins with a letter
            start += 1
        out += [text[done:start], _shown(text[start : m.end()])]
        done = m.end()
    out.append(text[done:])
    return "".join(out)


# A service prints the same few URLs again and again (its DSN in every connection message), and
# parsing one was the largest share of the all-in-one's output path (docs/figures.md#logprefix). How a
# URL is shown depends on its text alone, so recent answers are kept, keyed by a digest: the URL
# itself, which may hold a password nobody told us about, is not kept.
_SHOWN: dict[bytes, str] = {}
_SHOWN_MAX = 256


def _shown(url: str) -> str:
    key = hashlib.blake2b(url.encode("utf-8", "surrogateescape"), digest_size=16).digest()
    shown = _SHOWN.get(key)
    if shown is None:
        if len(_SHOWN) >= _SHOWN_MAX:
            _SHOWN.clear()  # forget all at once: simpler than LRU, and a log repeats its URLs
        shown = _SHOWN[key] = redact_url(url)
    return shown
