"""issue 19: the all-in-one's output in JSON and text mode, through ``run --role all``."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.allinone import base_env, running, spiffctl
from tests.support.log_lines import MARK, PRINTED, SECRET, joined, objects
from tests.support.poll import wait_until

GOLDEN = Path(__file__).parent / "golden" / "allinone_text.txt"
ROLES = ("api", "background")


def _run_all(tmp_path: Path, **extra: str) -> tuple[list[str], list[str]]:
    env = base_env(tmp_path, STANDIN_PRINT=PRINTED, **extra)
    with running(tmp_path, env, "--no-wait") as run:
        for role in ROLES:
            run.wait_for(f"{role} ready")
            # "{}" is the last line the stand-in prints: as it is in text mode, with the role in JSON
            last = "|".join(re.escape(line) for line in (f"{role} | {{}}", json.dumps({"role": role})))
            run.wait_for(f"^({last})$", stream="err")
        run.terminate()
        assert run.wait(15) == 0
    return run.lines("out"), run.lines("err")


def _marked(lines: list[str], role: str) -> list[str]:
    return [line for line in lines if line.startswith(f"{role} | ") and (MARK in line or line.endswith("| {}"))]


def test_text_mode_is_byte_for_byte_todays_format(tmp_path):
    out, err = _run_all(tmp_path, SPIFFCTL_LOG_FORMAT="text")
    got = "".join(
        f"{stream} {line}\n"
        for role in ROLES
        for stream, lines in (("out", out), ("err", err))
        for line in _marked(lines, role)
    )
    if os.environ.get("RECORD_GOLDEN"):
        GOLDEN.write_text(got)
    assert got == GOLDEN.read_text()


LONG = "z" * 40_000


@pytest.mark.parametrize("how", [{"SPIFFCTL_LOG_FORMAT": "json"}, {"SPIFFWORKFLOW_BACKEND_ENV": "production"}])
def test_json_mode_every_line_is_an_object(tmp_path, how):
    out, err = _run_all(tmp_path, **how, STANDIN_API_PRINT=PRINTED + "\n" + LONG)
    every = objects(out + err)
    assert not any(SECRET in line for line in out + err)
    for role in ROLES:
        for stream, lines in (("stdout", objects(out)), ("stderr", objects(err))):
            mine = [o for o in lines if o.get("role") == role and MARK in str(o.get("message"))]
            kept = next(o for o in mine if o.get("loggerName") == "spiffworkflow_backend")
            assert kept["message"] == "mark-1 key ***" and kept["processID"] == 7  # the child's fields kept
            wrapped = next(o for o in mine if "mark-2" in o["message"])
            assert wrapped["stream"] == stream and wrapped["message"] == "mark-2 plain line with *** in it"
            assert next(o for o in mine if "mark-4" in o["message"])["n"] == [1, 2, {"deep": None}]
        assert sum(o.get("role") == "theirs" for o in every) == 4  # its own role field is not overwritten
    for stream_lines in (objects(out), objects(err)):
        parts = [o for o in stream_lines if o.get("role") == "api" and "parts" in o]
        assert joined(parts) == LONG
    events = {(o.get("event"), o.get("role")) for o in every if o.get("logger") == "spiffctl"}
    assert {("started", "api"), ("started", "background"), ("stopped", "api"), ("acquired", "background")} <= events
    assert next(o for o in every if o.get("event") == "acquired")["epoch"] >= 1


def test_status_json_has_each_roles_state_and_the_leases_last_event(tmp_path):
    env = base_env(tmp_path, SPIFFCTL_LOG_FORMAT="json")
    with running(tmp_path, env, "--no-wait") as run:
        for role in ROLES:
            run.wait_for(f"{role} ready")

        def document() -> dict[str, Any] | None:
            ran = subprocess.run(spiffctl("status", "--json"), env=env, capture_output=True, text=True, timeout=10)
            doc = json.loads(ran.stdout)
            return doc if ran.returncode == 0 and doc["lease"] is not None else None

        doc = wait_until(document, timeout=15)
        run.terminate()
        assert run.wait(15) == 0
    assert [(r["role"], r["state"]) for r in doc["roles"]] == [("api", "RUNNING"), ("background", "RUNNING")]
    assert all(isinstance(r["pid"], int) for r in doc["roles"]) and doc["supervisor"] == "RUNNING"
    assert doc["lease"]["event"] in ("acquired", "started") and doc["lease"]["epoch"] >= 1
