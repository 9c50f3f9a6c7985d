"""The all-in-one's output path: every role's line prefixed, in order, scrubbed of secrets,
whatever the chunking of supervisord's reads."""

from __future__ import annotations

import itertools
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from spiffctl.allinone import logprefix
from spiffctl.allinone.logprefix import LinePrefixer
from spiffctl.util import redact
from spiffctl.util.redact import Redactor, redact_url_in_text, redact_urls_in_bytes

SECRETS = ["Tr0ub4dor#horse", "flask-session-key-0123", "s3cr3t\\path"]


def run(chunks: list[bytes], scrub: Redactor | None, role: str = "api") -> bytes:
    r, w = os.pipe()
    prefixer = LinePrefixer({"stdout": w}, scrub=scrub)
    for chunk in chunks:
        prefixer.feed(role, "stdout", chunk)
    prefixer.flush(role)
    os.close(w)
    out = b""
    while data := os.read(r, 65536):
        out += data
    os.close(r)
    return out


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


lines = st.lists(
    st.one_of(
        st.text(alphabet=st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)), max_size=40),
        st.sampled_from(SECRETS).map(lambda s: f"db uri postgresql://spiff:{s}@db/spiff and {s} again"),
    ),
    min_size=1,
    max_size=20,
)


@settings(max_examples=300)
@given(lines, st.lists(st.integers(0, 10_000), max_size=12))
def test_every_line_once_in_order_prefixed_and_scrubbed(text_lines, cuts):
    data = "".join(line + "\n" for line in text_lines).encode()
    out = run(chunked(data, cuts), Redactor(SECRETS))
    got = out.split(b"\n")[:-1]
    assert len(got) == len(text_lines)
    for raw, line in zip(text_lines, got, strict=True):
        assert line.startswith(b"api | ")
        assert line == b"api | " + Redactor(SECRETS)(raw).encode()
    assert not any(s.encode() in out for s in SECRETS)


@given(lines, st.lists(st.integers(0, 10_000), max_size=12))
def test_without_secrets_the_output_is_the_input_prefixed(text_lines, cuts):
    data = "".join(line + "\n" for line in text_lines).encode()
    out = run(chunked(data, cuts), None)
    assert out == b"".join(b"api | " + line.encode() + b"\n" for line in text_lines)


def test_a_secret_straddling_the_cut_of_an_endless_line_is_still_scrubbed(monkeypatch):
    monkeypatch.setattr(logprefix, "MAX_PARTIAL", 64)
    secret = SECRETS[0]
    for offset in range(len(secret) + 2):
        data = ("x" * (60 + offset) + secret + "y" * 200).encode()
        out = run([data[i : i + 7] for i in range(0, len(data), 7)], Redactor(SECRETS))
        assert secret.encode() not in out.replace(b"\napi | ", b""), offset  # not even across the pieces
        assert out.replace(b"\napi | ", b"").count(b"***") == 1


def test_a_partial_line_is_written_when_the_role_ends():
    assert run([b"first\nno newline at the end Tr0ub4dor#horse"], Redactor(SECRETS)) == (
        b"api | first\napi | no newline at the end ***\n"
    )


def test_bytes_that_are_not_utf8_pass_through():
    assert run([b"\xff\xfe raw Tr0ub4dor#horse\n"], Redactor(SECRETS)) == b"api | \xff\xfe raw ***\n"


url_lines = st.lists(
    st.one_of(
        st.text(max_size=30),
        st.binary(max_size=6).map(lambda b: b.decode("utf-8", "surrogateescape")),
        st.sampled_from(
            ["postgresql://u:pw@db/x", "x+y://h:1/?token=t&a=1", "redis://:p@r/0 ", "://", "1a://b", "é://"]
        ),
    ),
    max_size=20,
)


@given(url_lines)
def test_urls_are_redacted_line_by_line_as_in_the_whole_text(pieces):
    text = "".join(pieces)
    data = text.encode("utf-8", "surrogateescape")
    expected = redact_url_in_text(text).encode("utf-8", "surrogateescape")
    assert redact_urls_in_bytes(data) == expected


def test_urls_shown_are_remembered_by_digest_not_by_their_text():
    out = redact_urls_in_bytes(b"x\nconnect postgresql://spiff:not-a-known-pw@db/spiff failed\ny\n")
    assert out == b"x\nconnect postgresql://spiff:***@db/spiff failed\ny\n"
    assert redact._SHOWN and all(len(key) == 16 for key in redact._SHOWN)
    assert not any("not-a-known-pw" in shown for shown in redact._SHOWN.values())
