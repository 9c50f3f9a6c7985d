"""issue 19: SPIFFCTL_LOG_FORMAT, spiffctl's own JSON lines, the roles' lines as JSON, wait events."""

from __future__ import annotations

import itertools
import json
import re
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spiffctl import log
from spiffctl.log.child import LINE_LIMIT, JsonLines
from spiffctl.log.choice import FORMAT_VAR, choose
from spiffctl.log.record import own_line
from spiffctl.util.redact import Redactor
from tests.support.allinone import base_env
from tests.support.cli import spiffctl
from tests.support.log_lines import PRINTED, SECRET, joined, objects

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SECRETS = [SECRET, "Tr0ub4dor#horse", 'quo"te\\pass']


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "text"),
        ({"SPIFFWORKFLOW_BACKEND_ENV": "local_development"}, "text"),
        ({"SPIFFWORKFLOW_BACKEND_ENV": "production"}, "json"),
        ({"SPIFFWORKFLOW_BACKEND_ENV": "production", FORMAT_VAR: "text"}, "text"),
        ({FORMAT_VAR: "JSON"}, "json"),
        ({FORMAT_VAR: "auto", "SPIFFWORKFLOW_BACKEND_ENV": "qa1"}, "json"),
    ],
)
def test_the_format_follows_the_backends_own_rule_unless_chosen(env, expected):
    assert choose(env) == expected


def test_a_bad_format_is_one_line_and_78(tmp_path):
    ran = spiffctl("run", "--role", "api", "--no-wait", env=base_env(tmp_path, **{FORMAT_VAR: "yaml"}))
    assert ran.code == 78
    assert ran.err.splitlines() == [
        f"spiffctl: {FORMAT_VAR}: 'yaml' is not one of auto, json, text; "
        f"set {FORMAT_VAR} to auto, json or text (any case)"
    ]


def test_own_line_has_the_five_fields_and_events_never_replace_them():
    line = json.loads(own_line("hello", "INFO", "api", "waiting", {"message": "no", "role": "no", "waited": 1.5}))
    assert line["message"] == "hello" and line["role"] == "api" and line["logger"] == "spiffctl"
    assert line["level"] == "INFO" and RFC3339_UTC.match(line["timestamp"])
    assert line["event"] == "waiting" and line["waited"] == 1.5


def test_text_mode_prints_an_event_as_the_plain_message_it_always_was(monkeypatch):
    monkeypatch.setenv(FORMAT_VAR, "text")
    assert log.line(log.Event("waiting for x", "waiting", waited=1)) == "spiffctl: waiting for x"
    assert log.line(log.Event("api started", "started", json_only=True)) is None
    monkeypatch.setenv(FORMAT_VAR, "json")
    assert json.loads(log.line("warning: careful") or "")["level"] == "WARNING"


# --- the roles' lines in the all-in-one, JSON mode -------------------------------------------


def run(chunks: list[bytes], scrub: Redactor | None = None, role: str = "api") -> list[str]:
    with tempfile.TemporaryFile() as sink:  # not a pipe: a long line's parts exceed its buffer
        lines = JsonLines({"stdout": sink.fileno()}, scrub=scrub)
        for chunk in chunks:
            lines.feed(role, "stdout", chunk)
        lines.flush(role)
        sink.seek(0)
        out = sink.read()
    assert out.endswith(b"\n")
    return out.decode().split("\n")[:-1]


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
child_lines = st.one_of(
    st.dictionaries(st.text(max_size=10), json_values, max_size=5).map(json.dumps),
    st.text(alphabet=st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)), max_size=60),
    st.sampled_from(SECRETS).map(lambda s: json.dumps({"message": f"uri postgresql://u:{s}@db/x and {s}"})),
)


@settings(max_examples=200)
@given(st.lists(child_lines, min_size=1, max_size=15), st.lists(st.integers(0, 5000), max_size=10))
def test_every_line_is_one_object_fields_kept_role_added_secrets_scrubbed(lines, cuts):
    data = "".join(line + "\n" for line in lines).encode()
    out = run(chunked(data, cuts), Redactor(SECRETS))
    got = objects(out)
    assert len(got) == len(lines)
    for raw, obj in zip(lines, got, strict=True):
        try:
            original = json.loads(Redactor(SECRETS)(raw.strip(" \t")))
        except ValueError:
            original = None
        if isinstance(original, dict):
            assert obj == {"role": "api", **original} if "role" not in original else obj == original
        else:
            assert obj["message"] == Redactor(SECRETS)(raw.strip(" \t")) and obj["stream"] == "stdout"
            assert obj["role"] == "api" and RFC3339_UTC.match(obj["timestamp"])
    assert not any(s in line for s in SECRETS for line in out)


@pytest.mark.parametrize("kind", ["plain", "json", "multibyte", "escapes"])
def test_a_long_line_comes_out_in_numbered_parts_that_join_back(kind):
    original = {
        "plain": "x" * 40_000,
        "json": json.dumps({"message": "y" * 50_000, "level": "INFO"}),
        "multibyte": "é€😀" * 9_000,
        "escapes": '\x01"\\' * 12_000,
    }[kind]
    out = run([(original + "\n").encode()])
    assert len(out) > 1 and all(len(line.encode()) <= LINE_LIMIT for line in out)
    assert joined(objects(out)) == original


def test_a_secret_in_a_json_line_is_scrubbed_and_the_line_still_parses():
    line = json.dumps({"message": f"password {SECRETS[2]} here", "level": "ERROR"})
    [obj] = objects(run([line.encode() + b"\n"], Redactor(SECRETS)))
    assert obj == {"role": "api", "message": "password *** here", "level": "ERROR"}


def test_a_role_key_written_with_escapes_is_still_the_lines_own():
    lines = ['{"r\\u006fle": "theirs", "n": 1}', '{"n": 2}', '{"message": "role"}', "{}"]
    assert objects(run(["\n".join(lines).encode() + b"\n"])) == [
        {"role": "theirs", "n": 1},
        {"role": "api", "n": 2},
        {"role": "api", "message": "role"},
        {"role": "api"},
    ]


def test_a_line_nested_too_deep_to_parse_is_wrapped_not_raised():
    line = '{"a": ' + "[" * 5_000  # short enough to be one line, deep enough for RecursionError
    for chunk in ([line], [line, '{"b": 1}']):
        got = objects(run(["\n".join(chunk).encode() + b"\n"]))
        assert got[0]["message"] == line and got[0]["stream"] == "stdout"
        assert got[1:] == [{"role": "api", "b": 1}][: len(chunk) - 1]


# --- through the CLI -------------------------------------------------------------------------


def test_a_wait_is_an_event_with_the_dependency_the_time_and_the_last_error(tmp_path, closed_port):
    uri = f"postgresql://spiff:{SECRETS[1]}@127.0.0.1:{closed_port.port}/spiff"
    env = base_env(tmp_path, SPIFFWORKFLOW_BACKEND_DATABASE_URI=uri, SPIFFWORKFLOW_BACKEND_ENV="production")
    ran = spiffctl("run", "--role", "api", "--wait-timeout", "4", env=env)
    assert ran.code == 69 and SECRETS[1] not in ran.err
    lines = objects(ran.err.splitlines())
    [waiting] = [e for e in lines if e.get("event") == "waiting"]
    assert "database" in waiting["dependency"] and f":{closed_port.port}" in waiting["dependency"]
    assert 3 <= waiting["waited"] <= 4 and waiting["timeout"] == 4 and waiting["error"]
    assert lines[-1]["level"] == "ERROR" and "not ready after" in lines[-1]["message"]
    assert all(e["role"] == "api" and e["logger"] == "spiffctl" for e in lines)


@pytest.mark.parametrize("role", ["api", "background", "worker"])
def test_a_single_role_speaks_json_and_passes_the_backends_lines_through(tmp_path, role):
    env = base_env(
        tmp_path,
        STANDIN_PRINT=PRINTED,
        STANDIN_EXIT_AFTER="0.3",
        SPIFFWORKFLOW_BACKEND_ENV="production",
        SPIFFWORKFLOW_BACKEND_CELERY_ENABLED="true",
        SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
        SPIFFWORKFLOW_BACKEND_RUN_BACKGROUND_SCHEDULER_IN_CREATE_APP="true",  # spiffctl says it overrides it
    )
    ran = spiffctl("run", "--role", role, "--no-wait", env=env)
    assert ran.code == 0, ran.err
    own = [json.loads(line) for line in ran.err.splitlines() if line.startswith('{"timestamp"')]
    assert own and all(e["logger"] == "spiffctl" and e["role"] == role for e in own)
    assert any("overridden to false" in e["message"] for e in own)
    # After the exec the lines are the backend's own, untouched: JSON stays JSON, the rest as it was.
    for stream in (ran.out, ran.err):
        assert PRINTED in stream
