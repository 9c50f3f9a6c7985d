"""The scrubber corpus (issue 16, item 3): every printed form of a secret, cut anywhere in a stream,
in lines longer than the 64 KiB read, read from ``*_FILE``, multi-line; through the unit API and
through the all-in-one's real output path."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, quote_plus

from hypothesis import given, settings
from hypothesis import strategies as st

from spiffctl.allinone.logprefix import MAX_PARTIAL, LinePrefixer
from spiffctl.util.redact import Redactor
from spiffctl.util.scrub import MAX_ANCHORS, Pattern
from tests.support.allinone import base_env, running

PASSWORD = "p@ss w/rd+Ünï:%q'\\x"
PEM = "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD9\n0WpvoSt1lo+ZLT2WUcsi\n-----END KEY-----"


def lower_hex(encoded: str) -> str:
    out, i = [], 0
    while i < len(encoded):
        if encoded[i] == "%":
            out.append(encoded[i : i + 3].lower())
            i += 3
        else:
            out.append(encoded[i])
            i += 1
    return "".join(out)


FORMS: dict[str, Callable[[str], str]] = {
    "raw": lambda s: s,
    "quote": quote,
    "quote safe=''": lambda s: quote(s, safe=""),
    "quote_plus": quote_plus,
    "quote, lower-case hex": lambda s: lower_hex(quote(s)),
    "quote_plus safe='', lower-case hex": lambda s: lower_hex(quote_plus(s, safe="")),
    "repr": lambda s: repr(s)[1:-1],
    "json": lambda s: json.dumps(s)[1:-1],
    "json, not ascii": lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
}


def printed(secret: str) -> list[str]:
    return [form(secret) for form in FORMS.values()]


def stream_through(redactor: Redactor, data: bytes, step: int) -> bytes:
    stream = redactor.stream()
    out = b"".join(stream.feed(data[i : i + step]) for i in range(0, len(data), step))
    return out + stream.flush()


def test_every_printed_form_is_masked_in_text():
    redactor = Redactor([PASSWORD])
    for name, form in FORMS.items():
        text = f"connecting as spiff with {form(PASSWORD)} now"
        assert redactor(text) == "connecting as spiff with *** now", name


def test_each_line_of_a_multi_line_secret_is_masked_on_its_own():
    redactor = Redactor([PEM])
    for line in PEM.splitlines():
        out = redactor(f"key line:   {line}   ")
        assert line not in out and "***" in out


@settings(max_examples=200, deadline=None)
@given(
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=4, max_size=24),
    st.sampled_from(list(FORMS)),
    st.integers(1, 64),
    st.text(max_size=30),
)
def test_a_stream_cut_anywhere_never_shows_a_form(secret, form, step, around):
    shown = FORMS[form](secret)
    data = f"{around}{shown}\n{around} again {shown}{around}".encode()
    out = stream_through(Redactor([secret]), data, step)
    assert shown.encode() not in out
    assert out.count(b"\n") == data.count(b"\n")


def test_a_secret_after_the_64_kib_read_of_a_long_line_is_masked(tmp_path: Path):
    redactor = Redactor([PASSWORD])
    for offset in [*range(-len(PASSWORD), 2), *range(65536 - len(PASSWORD), 65536 + 2)]:
        # Across the end of a read that makes the line longer than the prefixer keeps.
        line = ("x" * (MAX_PARTIAL + offset) + PASSWORD + "y" * 100 + "\n").encode()
        sink = tmp_path / f"out{offset}"
        with sink.open("wb") as f:
            prefixer = LinePrefixer({"stdout": f.fileno()}, scrub=redactor)
            for i in range(0, len(line), 65536):  # supervisord's reads
                prefixer.feed("api", "stdout", line[i : i + 65536])
            prefixer.flush("api")
        out = sink.read_bytes()
        for piece in (PASSWORD[:4], PASSWORD[-4:]):
            assert piece.encode() not in out, offset


def test_for_env_knows_the_password_of_a_url_read_from_a_file(tmp_path: Path):
    uri = tmp_path / "uri"
    uri.write_text("postgresql://spiff:Fil3dPassw0rd@db/spiff\n")
    redactor = Redactor.for_env({"SPIFFWORKFLOW_BACKEND_DATABASE_URI_FILE": str(uri)})
    assert redactor("password authentication failed: 'Fil3dPassw0rd'") == "password authentication failed: '***'"


def test_the_all_in_one_prints_no_form_of_any_secret(tmp_path: Path):
    proxy = tmp_path / "proxy"
    proxy.write_text(f"http://spiff:{quote(PASSWORD, safe='')}@127.0.0.1:1/\n")
    key = tmp_path / "key"
    key.write_text(PEM + "\n")
    lines = [*printed(PASSWORD), *PEM.splitlines(), "z" * (MAX_PARTIAL + 10) + PASSWORD + " end"]
    env = base_env(
        tmp_path,
        SPIFFCTL_LOCK="off",
        SPIFFWORKFLOW_BACKEND_CONNECTOR_PROXY_URL_FILE=str(proxy),
        FLASK_SESSION_SECRET_KEY_FILE=str(key),
        STANDIN_API_PRINT="\n".join(f"said {line} here" for line in lines) + "\nall said",
    )
    del env["FLASK_SESSION_SECRET_KEY"]
    with running(tmp_path, env, "--no-wait") as run:
        run.wait_for(r"^api \| all said$", stream="err")
        run.terminate()
        assert run.wait(15) == 0
    everything = "\n".join(run.lines("out") + run.lines("err"))
    assert everything.count("said *** here") >= len(lines) - 1
    for shown in [*printed(PASSWORD), *PEM.splitlines()[1:-1], PASSWORD[:4], PASSWORD[-4:]]:
        assert shown not in everything


# --- searching around anchors (few secrets) finds exactly what a whole scan finds -------------

anchor_secrets = st.lists(
    st.text(st.sampled_from("abcdefXYZ0129-._~" * 4 + "#@:/ +%\"'\\éü"), min_size=4, max_size=14),
    min_size=1,
    max_size=4,
).map(lambda found: found + [s[: len(s) // 2 + 2] for s in found])  # secrets holding others


@settings(max_examples=300, deadline=None)
@given(anchor_secrets, st.lists(st.integers(0, 10_000), max_size=12), st.text(max_size=20), st.integers(1, 64))
def test_the_anchored_search_finds_what_a_whole_scan_finds(secrets, picks, noise, step):
    pattern = Pattern(secrets)
    shown = [form(s) for s in sorted(pattern.secrets) for form in FORMS.values()]
    data = "".join(noise[: p % 7] + shown[p % len(shown)] for p in picks).encode("utf-8", "surrogateescape")
    assert pattern.in_line is not None
    assert [m.span() for m in pattern.finditer(data)] == [m.span() for m in pattern.in_line.finditer(data)]
    assert stream_through(Redactor(secrets), data, step) == pattern.in_line.sub(b"***", data)


def test_a_few_secrets_are_searched_by_anchor_and_many_by_the_alternation():
    assert Pattern(["Tr0ub4dor#horse", 'quo"te\\pass-word']).anchors is not None
    assert Pattern(["Tr0ub4dor#horse", PASSWORD]).anchors is None  # "ss", "rd": pieces too short to search for
    assert Pattern([f"secret-number-{i:03d}" for i in range(MAX_ANCHORS + 1)]).anchors is None
