"""issue 19: the all-in-one's output in JSON and text mode, through ``run --role all``."""

from __future__ import annotations

import os
from pathlib import Path

from tests.allinone_support import base_env, running
from tests.logs_support import MARK, PRINTED

GOLDEN = Path(__file__).parent / "golden" / "allinone_text.txt"
ROLES = ("api", "background")


def _run_all(tmp_path: Path, **extra: str) -> tuple[list[str], list[str]]:
    env = base_env(tmp_path, STANDIN_PRINT=PRINTED, **extra)
    with running(tmp_path, env, "--no-wait") as run:
        for role in ROLES:
            run.wait_for(f"{role} ready")
            run.wait_for(f"{role}.*{MARK}7|{MARK}7.*{role}|{role}.*{{}}", stream="err")
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
