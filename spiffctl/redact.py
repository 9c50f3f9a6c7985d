"""The one place that knows how to hide secrets.

Two complementary tools:

* :func:`redact_url` rewrites a URL structurally: the password in the userinfo and any query
  parameter whose name looks secret become ``***``. It never fails, even on garbage, because it
  runs on the error path for inputs we could not parse.
* :class:`Redactor` scrubs free text (driver error messages, child output, log lines) of every
  known secret *value*: URL passwords, ``*_FILE`` contents and variables whose names say they are
  secret. Drivers sometimes echo parts of a DSN back, so structural redaction alone is not enough.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import unquote

MASK = "***"

# Query parameters that carry credentials in the URL dialects we see (libpq, SQLAlchemy, kombu, boto).
_SECRET_PARAM = re.compile(r"(pass|secret|token|key|credential|auth)", re.IGNORECASE)
# Environment variables whose *value* is a secret by name.
_SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE_KEY|_KEY$|CREDENTIAL)", re.IGNORECASE)
# Variables that hold URLs which may embed a password.
_URL_NAME = re.compile(r"(_URI|_URL)$")
# Short values are left alone in free text: scrubbing "a" or "ab" would mangle every line while
# protecting nothing a reader could not guess. URLs are still redacted structurally.
_MIN_SCRUB_LENGTH = 4

# The scheme is optional: a value like "://user:pw@host" is malformed but still holds a password.
# The password part is greedy up to the last @ of the authority: passwords with an unencoded @ exist.
_USERINFO = re.compile(r"^(?P<scheme>(?:[A-Za-z][A-Za-z0-9+.\-]*)?://)(?P<user>[^:@/?#]*):(?P<pw>[^/?#]*)@")
_QUERY_PARAM = re.compile(r"(?P<sep>[?&;])(?P<name>[^=&;#]+)=(?P<value>[^&;#]*)")


def redact_url(url: str) -> str:
    """Return ``url`` with its password and secret-looking query values replaced by ``***``."""

    def _userinfo(m: re.Match[str]) -> str:
        if not m["pw"]:
            return m.group(0)
        return f"{m['scheme']}{m['user']}:{MASK}@"

    def _param(m: re.Match[str]) -> str:
        if _SECRET_PARAM.search(m["name"]) and m["value"]:
            return f"{m['sep']}{m['name']}={MASK}"
        return m.group(0)

    out = _USERINFO.sub(_userinfo, url, count=1)
    return _QUERY_PARAM.sub(_param, out)


def url_secrets(url: str) -> set[str]:
    """The secret values embedded in ``url`` (raw and percent-decoded), for :class:`Redactor`."""
    found: set[str] = set()
    m = _USERINFO.match(url)
    if m and m["pw"]:
        found.update({m["pw"], unquote(m["pw"])})
    for q in _QUERY_PARAM.finditer(url):
        if _SECRET_PARAM.search(q["name"]) and q["value"]:
            found.update({q["value"], unquote(q["value"])})
    return found


def env_secrets(env: Mapping[str, str]) -> set[str]:
    """Secret values found in an environment: secret-named variables and passwords inside URLs."""
    found: set[str] = set()
    for name, value in env.items():
        if not value:
            continue
        if _SECRET_NAME.search(name) and not _URL_NAME.search(name):
            found.add(value)
        if "://" in value:
            found |= url_secrets(value)
    return found


class Redactor:
    """Scrubs known secret values out of arbitrary text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        self._secrets |= {s for s in secrets if len(s) >= _MIN_SCRUB_LENGTH}
        # Longest first so a secret that contains another is masked whole.
        ordered = sorted(self._secrets, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        text = redact_url_in_text(text)
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)


_URL_IN_TEXT = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.\-]*)?://[^\s'\"<>]+")


def redact_url_in_text(text: str) -> str:
    """Redact every URL found inside a longer text."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
