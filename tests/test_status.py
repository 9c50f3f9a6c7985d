"""``spiffctl status`` against a running (or not running) all-in-one."""

from __future__ import annotations

import re
import subprocess

from tests.support.allinone import base_env, records, running, spiffctl
from tests.support.poll import wait_until

LINE = re.compile(r"^(?P<role>\w+)\s+(?P<state>[A-Z]+)\s+pid (?P<pid>\d+), uptime (?P<uptime>\d+:\d\d:\d\d)$")


def status(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(spiffctl("status"), env=env, capture_output=True, text=True, timeout=15)


def test_nothing_runs(tmp_path):
    result = status(base_env(tmp_path))
    assert result.returncode == 3
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spiffctl: nothing runs")


def test_one_line_per_role_with_state_pid_uptime(tmp_path):
    env = base_env(tmp_path, SPIFFWORKFLOW_BACKEND_CELERY_ENABLED="true", SPIFFCTL_LOCK="off")
    with running(tmp_path, env, "--no-wait") as run:
        for role in ("api", "background", "worker"):
            run.wait_for(rf"^{role} \| {role} ready")
        result = status(env)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert len(lines) == 3
        parsed = [LINE.match(line) for line in lines]
        assert all(parsed), lines
        started = {role: pid for role, what, pid in records(tmp_path) if what == "start"}
        assert {m["role"]: int(m["pid"]) for m in parsed} == started
        assert all(m["state"] == "RUNNING" for m in parsed)
        run.terminate()
        assert run.wait(15) == 0
    # The socket is gone with the supervisor: back to "nothing runs".
    assert status(env).returncode == 3


def test_a_role_restarting_is_not_all_running(tmp_path):
    env = base_env(tmp_path, SPIFFCTL_RESTARTS="1000", STANDIN_API_EXIT_AFTER="0.05", STANDIN_API_EXIT_CODE="5")
    with running(tmp_path, env, "--no-wait") as run:
        run.wait_for(r"^background \| background ready")
        # While the api crash-loops, some status reads catch it outside RUNNING.
        seen: set[str] = set()

        def caught_not_running() -> bool:
            result = status(env)
            for line in result.stdout.splitlines():
                if line.startswith("api "):
                    seen.add(line.split()[1])
            return result.returncode == 1

        wait_until(caught_not_running, timeout=20, interval=0.01, what=lambda: seen)
