"""spiffctl.util.urls against the parsers that really read the URLs: SQLAlchemy for database URIs,
kombu (urllib) for the broker and the other URLs; and its display never shows a password."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from kombu.utils.url import url_to_parts
from sqlalchemy.engine import make_url

from spiffctl.util import urls

PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))
# Distinctive 4-letter tokens: a password is tokens joined by random printable separators, so
# any fragment a parser could split off still holds a token we can look for in the output.
TOKENS = st.text(alphabet="qxzjvk", min_size=4, max_size=4)
SEPARATORS = st.text(alphabet=PRINTABLE, max_size=3)


@st.composite
def passwords(draw: st.DrawFn) -> tuple[str, list[str]]:
    pieces = draw(st.lists(st.tuples(SEPARATORS, TOKENS), min_size=1, max_size=3))
    tail = draw(SEPARATORS)
    return "".join(s + t for s, t in pieces) + tail, [t for _, t in pieces]


# Users never share a letter with the tokens, so a token found in the output came from the password.
users = st.text(alphabet="abcdefghilmnoprstuwy0123456789_-.", max_size=8)
hosts = st.sampled_from(["db", "127.0.0.1", "db.example.org", "[::1]", ""])
ports = st.sampled_from(["", ":5432", ":1", ":65535", ":0", ":99999", ":port"])
paths = st.sampled_from(["", "/spiff", "/spiff?sslmode=require", "/0", "//", "/x?password=qxzjqxzj"])


@settings(max_examples=500)
@given(st.sampled_from(["postgresql", "mysql+mysqldb", "postgresql+psycopg2"]), users, passwords(), hosts, ports, paths)
@example("postgresql", "spiff", ("Tr0ub4dor#horse", ["horse"]), "db", ":5432", "/spiff")
@example("postgresql", "u", ("12/ss", ["ss"]), "h", "", "/db")
def test_database_uris_are_read_exactly_as_sqlalchemy_reads_them(scheme, user, secret, host, port, path):
    password, _ = secret
    for written in (password, quote(password, safe="")):
        text = f"{scheme}://{user}:{written}@{host}{port}{path}"
        try:
            theirs = make_url(text)
        except Exception:
            theirs = None
        try:
            ours = urls.parse(text, "sqlalchemy")
        except urls.URLError:
            ours = None
        if ours is None:
            # Stricter only where the backend would fail later anyway: a port out of range, or a
            # host holding the rest of a password that had an unencoded "@".
            port_ok = theirs is None or theirs.port is None or 0 < theirs.port < 65536
            assert theirs is None or not port_ok or "@" in (theirs.host or "") + (theirs.database or ""), text
            continue
        assert theirs is not None, text
        assert (ours.username, ours.password, ours.host, ours.port, ours.path or None) == (
            theirs.username,
            theirs.password,
            theirs.host,
            theirs.port,
            theirs.database or None,  # "" and None both mean "no database name"
        ), text
        assert ours.params == dict(theirs.query), text


@settings(max_examples=500)
@given(st.sampled_from(["redis", "rediss", "amqp"]), users, passwords(), hosts, ports, paths)
def test_other_urls_are_accepted_only_when_kombu_reads_the_same_parts(scheme, user, secret, host, port, path):
    password, _ = secret
    for written in (password, quote(password, safe="")):
        text = f"{scheme}://{user}:{written}@{host}{port}{path}"
        try:
            ours = urls.parse(text, "standard")
        except urls.URLError:
            continue  # refused: the operator is told to percent-encode
        theirs = url_to_parts(text)
        assert (ours.host or None, ours.port, ours.username or None, ours.password or None) == (
            theirs.hostname,
            theirs.port,
            theirs.username,
            theirs.password,
        ), text
        if "%" not in password:  # a raw "%41" is an encoding to every reader; intent is unknowable
            assert ours.password == password, text  # accepted means: kombu sends the intended password


@settings(max_examples=1000)
@given(
    st.sampled_from(["postgresql", "mysql", "redis", "amqp", "http", "db+postgresql", "x"]),
    users,
    passwords(),
    hosts,
    ports,
    paths,
    st.booleans(),
)
def test_display_never_shows_any_part_of_the_password(scheme, user, secret, host, port, path, encoded):
    password, tokens = secret
    written = quote(password, safe="") if encoded else password
    text = f"{scheme}://{user}:{written}@{host}{port}{path}"
    for grammar in ("sqlalchemy", "standard"):
        shown = urls.display(text, grammar)
        assert not any(t in shown for t in tokens), (text, grammar, shown)
        assert shown.startswith(f"{scheme}://")


@given(st.text())
def test_display_and_secrets_never_raise(text):
    urls.display(text, "sqlalchemy")
    urls.display(text, "standard")
    urls.secrets(text)


@given(passwords(), st.booleans())
def test_secrets_finds_the_password_under_either_grammar(secret, encoded):
    password, _ = secret
    assume("@" not in password or not encoded)
    written = quote(password, safe="") if encoded else password
    for text in (f"postgresql://u:{written}@db/x", f"redis://:{written}@r:6379/0"):
        found = urls.secrets(text)
        assert password in found or written in found, (text, found)


@pytest.mark.parametrize(
    ("text", "grammar", "shown"),
    [
        # The operator's URI from the report: valid for the backend, shown without its password.
        ("postgresql://spiff:Tr0ub4dor#horse@db:5432/spiff", "sqlalchemy", "postgresql://spiff:***@db:5432/spiff"),
        # The same password in a broker URL breaks it: scheme and host only.
        ("redis://:Tr0ub4dor#horse@db:6379/0", "standard", "redis://***@db:6379/0"),
        ("amqp://u:p/q@rabbit//", "standard", "amqp://***@rabbit//"),
        ("redis://user:secret", "standard", "redis://***"),
        ("postgresql://u@db/x", "sqlalchemy", "postgresql://u@db/x"),
        ("postgresql://db/x?sslmode=require&password=s3&sslpassword=k", "sqlalchemy", None),
    ],
)
def test_display_examples(text, grammar, shown):
    if shown is None:
        assert urls.display(text, grammar) == "postgresql://db/x?sslmode=require&password=***&sslpassword=***"
    else:
        assert urls.display(text, grammar) == shown


def test_parse_errors_quote_nothing_of_the_url():
    for text in ("redis://:Tr0ub4dor#horse@db:6379/0", "postgresql://u:p@db:Tr0ub4dor/x", "amqp://u:p/q@h//"):
        with pytest.raises(urls.URLError) as caught:
            urls.parse(text, "standard")
        assert "Tr0ub4dor" not in str(caught.value) and "p/q" not in str(caught.value)
    with pytest.raises(urls.URLError, match="percent-encode"):
        urls.parse("redis://:Tr0ub4dor#horse@db:6379/0", "standard")
