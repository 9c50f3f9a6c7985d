"""URLs the way their real consumers read them, and shown without their secrets.

Two grammars, because the backend's dependencies disagree:

* **Database URIs** are read by SQLAlchemy: ``scheme://[user[:password]@][host][:port][/database][?query]``
  where the password runs to the *first* ``@`` and may hold ``#``, ``/``, ``?`` and ``:``
  unencoded. ``postgresql://spiff:Tr0ub4dor#horse@db/spiff`` is a valid URI for the backend.
* **Every other URL** (Celery broker and result backend, the lease's Redis, HTTP) is read by
  kombu, redis-py or urllib, i.e. :func:`urllib.parse.urlsplit`: there a ``#`` starts the
  fragment, ``/`` the path and ``?`` the query, so the same password breaks the URL (the "port"
  becomes ``Tr0ub4dor``).

Parse errors never carry any part of the URL: the parsers' own messages quote the "port", which
is then the password. :func:`display` shows any string, parseable or not, with everything that
may be a secret replaced by ``***``; for text that cannot be parsed it keeps only the scheme and,
when it can be found safely, the host part.
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

from spiffctl.util import paths

MASK = "***"

Grammar = Literal["sqlalchemy", "standard"]

# Query parameters that carry credentials in the URL dialects we see (libpq, SQLAlchemy, kombu, boto).
SECRET_PARAM = re.compile(r"(pass|secret|token|key|credential|auth)", re.IGNORECASE)

# SQLAlchemy's URL grammar, written out: the userinfo is tried first and is optional; the
# password excludes only "@"; the host part ends at "/", ":" or "?"; the database runs to "?".
_SQLALCHEMY = re.compile(
    r"""
    (?P<scheme>[\w+]+)://
    (?:(?P<user>[^:/]*)(?::(?P<password>[^@]*))?@)?
    (?:(?:\[(?P<ipv6>[^/?]+)\]|(?P<host>[^/:?]+))?(?::(?P<port>[^/?]*))?)?
    (?:/(?P<database>[^?]*))?
    (?:\?(?P<query>.*))?
    """,
    re.VERBOSE,
)
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*):")
# A host part we may show when the URL around it is broken: names, addresses, a port, a simple path.
_SAFE_TAIL = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-_]*)(?::\d{1,5})?(?:/[A-Za-z0-9._\-/]*)?$")


class URLError(ValueError):
    """A URL that its consumer cannot read. The message never quotes the URL."""


class URL(NamedTuple):  # not a dataclass: PID 1 (supervisord) redacts URLs, and dataclasses costs it ~1 MB
    scheme: str  # as written, with its "+driver" if any: "postgresql+psycopg2"
    username: str | None  # percent-decoded
    password: str | None  # percent-decoded
    host: str | None
    port: int | None
    path: str  # the database name for SQLAlchemy URIs (no leading "/"); the raw path otherwise
    query: tuple[tuple[str, str], ...] = ()
    netloc_end: int = 0  # index in the raw text where userinfo + host + port end (for display)

    @property
    def base_scheme(self) -> str:
        """``postgresql+psycopg2`` -> ``postgresql``."""
        return self.scheme.split("+", 1)[0].lower()

    @property
    def params(self) -> dict[str, str]:
        return dict(self.query)


def scheme_of(text: str) -> str:
    """The scheme as written (``""`` when there is none)."""
    m = _SCHEME.match(text)
    return m["scheme"] if m and text[m.end() :].startswith("//") else ""


def parse(text: str, grammar: Grammar) -> URL:
    """``text`` as its consumer reads it; :class:`URLError` (quoting nothing) when it cannot."""
    if text != text.strip():
        raise URLError("it begins or ends with white space; remove it")
    if grammar == "sqlalchemy":
        return _parse_sqlalchemy(text)
    return _parse_standard(text)


def _parse_sqlalchemy(text: str) -> URL:
    m = _SQLALCHEMY.match(text)
    if m is None or m.end() != len(text):
        # SQLAlchemy silently drops what follows a line break in the query; we refuse it.
        raise URLError("it is not a URL SQLAlchemy can read (scheme://user:password@host:port/database)")
    _check_host(m["host"])
    if "@" in (m["host"] or "") + (m["port"] or "") + (m["database"] or ""):
        # SQLAlchemy reads "u:p@ss@db" as password "p", host "ss@db": the password held an "@".
        # Checked before the port: "u:p@ss:w@db:5432" would otherwise read as a bad port "w@db".
        raise URLError(f"its password holds an '@', where SQLAlchemy ends the password: {encode_hint('@')}")
    port = _port(m["port"])
    # The host part ends where the database or the query begins.
    if m["database"] is not None:
        end = m.start("database") - 1
    elif m["query"] is not None:
        end = m.start("query") - 1
    else:
        end = len(text)
    return URL(
        scheme=m["scheme"],
        username=unquote(m["user"]) if m["user"] is not None else None,
        password=unquote(m["password"]) if m["password"] is not None else None,
        host=m["ipv6"] or m["host"],
        port=port,
        path=m["database"] or "",
        query=tuple(parse_qsl(m["query"] or "", keep_blank_values=False)),
        netloc_end=end,
    )


def _parse_standard(text: str) -> URL:
    scheme = scheme_of(text)
    if not scheme:
        raise URLError("it is not a URL (scheme://user:password@host:port/path)")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as e:
        if "out of range" in str(e):
            raise URLError("its port is not from 1 to 65535") from None
        raise URLError(_hint_special(text) or "its host or port cannot be read") from None
    if "@" in text[len(scheme) + 3 + len(parts.netloc) :]:
        # "redis://u:pa/ss@h" parses as host "u", port "pa"... or even as a valid port: an "@"
        # after the host part means the password ended it early.
        raise URLError(_hint_special(text) or "it has an '@' after its host part")
    _check_host(parts.hostname)
    return URL(
        scheme=scheme,
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
        host=parts.hostname,
        port=port,
        path=parts.path,
        query=tuple(parse_qsl(parts.query, keep_blank_values=False)),
        netloc_end=len(scheme) + 3 + len(parts.netloc),
    )


# RFC 1035 limits, which the resolver enforces with an exception of its own (IDNA's "label empty
# or too long") at connect time.
MAX_LABEL = 63
MAX_HOST = 253


def _check_host(host: str | None) -> None:
    if not host or ":" in host:  # none, or an IPv6 address
        return
    if len(host.rstrip(".")) > MAX_HOST:
        raise URLError(f"its host name is longer than {MAX_HOST} characters")
    if any(len(label) > MAX_LABEL for label in host.split(".")):
        raise URLError(f"its host name has a part (between dots) longer than {MAX_LABEL} characters")


def _port(text: str | None) -> int | None:
    if not text:
        return None
    if not (text.isascii() and text.isdigit()):
        raise URLError("its port is not a number")
    if not 0 < int(text) < 65536:
        raise URLError("its port is not from 1 to 65535")
    return int(text)


def _hint_special(text: str) -> str:
    rest = text.split("://", 1)[1] if "://" in text else text
    userinfo = rest.rsplit("@", 1)[0] if "@" in rest else ""
    found = [c for c in "#/?" if c in userinfo]
    if not found:
        return ""
    shown = ", ".join(f"'{c}'" for c in found)
    # kombu and redis-py split URLs as urllib does: "#", "/" and "?" end the host part.
    return f"its password holds {shown}, which kombu and redis-py read as the end of the host: {encode_hint(*found)}"


# What a reserved character in a password must be written as.
PERCENT = {"@": "%40", "#": "%23", "/": "%2F", "?": "%3F", ":": "%3A", "%": "%25"}


def encode_hint(*chars: str) -> str:
    """``percent-encode the password: `@` is `%40```."""
    return "percent-encode the password: " + ", ".join(f"`{c}` is `{PERCENT[c]}`" for c in chars)


def display(text: str, grammar: Grammar = "standard") -> str:
    """``text`` with its password and secret-looking query values masked. Never raises.

    A URL its grammar cannot read shows as ``scheme://***@host:port/path`` when the part after
    its last ``@`` is a plain host (and path), else as ``scheme://***``.
    """
    scheme = scheme_of(text)
    if not scheme:
        return MASK if "@" in text else text
    try:
        url = parse(text, grammar)
    except URLError:
        return _display_broken(text, scheme)
    if grammar == "sqlalchemy" and text.count("@") > 1:
        # Valid, but "u:@pw?@db" reads as host "pw", query "@db": a second "@" means the
        # password may have held one. Show only what follows the last.
        return _display_broken(text, scheme)
    head = text[len(scheme) + 3 : url.netloc_end]
    if "@" in head:
        # SQLAlchemy: the userinfo ends at the first "@" (its password cannot hold one).
        # urllib: at the last. Either way a user without a password is shown as it is.
        at = head.index("@") if grammar == "sqlalchemy" else head.rindex("@")
        user, colon, _ = head[:at].partition(":")
        head = (f"{user}:{MASK}" if colon else user) + head[at:]
    rest = text[url.netloc_end :]
    return f"{scheme}://{head}{_mask_query(rest)}"


def _display_broken(text: str, scheme: str) -> str:
    rest = text[len(scheme) + 3 :]
    if "@" in rest:
        # Whatever follows the last "@" is not userinfo under any grammar: safe to show.
        tail = rest.rsplit("@", 1)[1]
        return f"{scheme}://{MASK}@{_mask_query(tail)}" if tail.isprintable() else f"{scheme}://{MASK}"
    # Without an "@" a password may sit where the port should be ("redis://user:secret").
    return f"{scheme}://{rest}" if _SAFE_TAIL.match(rest) else f"{scheme}://{MASK}"


_QUERY_PARAM = re.compile(r"(?P<sep>[?&;])(?P<name>[^=&;#]+)=(?P<value>[^&;#]*)")


def _mask_query(rest: str) -> str:
    def param(m: re.Match[str]) -> str:
        if SECRET_PARAM.search(m["name"]) and m["value"]:
            return f"{m['sep']}{m['name']}={MASK}"
        return m.group(0)

    return _QUERY_PARAM.sub(param, rest)


def secrets(text: str) -> set[str]:
    """Every value in ``text`` that may be a password, under either grammar, raw and decoded.

    Wider than any one parser on purpose: for scrubbing free text, a false positive costs a few
    masked characters, a false negative a leaked password.
    """
    scheme = scheme_of(text)
    found: set[str] = set()
    rest = text[len(scheme) + 3 :] if scheme else text.split("://", 1)[-1]
    if "@" in rest:
        for userinfo in (rest.split("@", 1)[0], rest.rsplit("@", 1)[0]):
            _, colon, password = userinfo.partition(":")
            if colon and password:
                found |= {password, unquote(password)}
    m = _SQLALCHEMY.match(text)
    if m and m["password"]:
        found |= {m["password"], unquote(m["password"])}
    for q in _QUERY_PARAM.finditer(rest):
        if SECRET_PARAM.search(q["name"]) and q["value"]:
            found |= {q["value"], unquote(q["value"])}
    # Parsers split a password that holds a delimiter and quote the pieces ("nonnumeric port:
    # 'Tr0ub4dor'"): each piece is a secret too.
    found |= {piece for s in found for piece in _DELIMITERS.split(s)}
    return {s for s in found if s}


_DELIMITERS = re.compile(r"[/?#@:\[\]]")


def sqlite_problem(text: str) -> tuple[str, str] | None:
    """Why the SQLite URL ``text`` cannot name a database file and how to fix it (nothing of it
    quoted), or ``None``.

    SQLAlchemy ignores a user, password, host or port in a SQLite URL and reads the rest as a
    relative path: ``sqlite://user:pw@host/db`` would make a folder named after the password.
    """
    rest = text.split("://", 1)[1] if "://" in text else ""
    authority = rest.split("/", 1)[0] if "/" in rest else rest.split("?", 1)[0]
    if authority and authority != ":memory:":
        return (
            "names a user, password, host or port, but SQLite opens a file on this machine",
            "write sqlite:////absolute/path.sqlite3 (four slashes) or sqlite:///relative/path.sqlite3",
        )
    path = rest[1:].split("?", 1)[0] if rest.startswith("/") else ""
    why = paths.too_long(path) if path else None
    return (f"cannot name a file: {why}", "use a shorter path") if why else None
