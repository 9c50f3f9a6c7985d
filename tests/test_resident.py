"""The Background runner's resident phase (``spiffctl.lease.resident``): what stays in memory for
the script's whole life is the guard, the lease store and its driver, nothing of the checks."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.poll import wait_until
from tests.support.replicas import Cluster

# What the checks and waits before the exec load, and the resident never needs.
NEVER = (
    "typer",
    "click",
    "psycopg",
    "pymysql",
    "sqlite3",
    "spiffctl.cli",
    "spiffctl.doctor",
    "spiffctl.schema",
    "spiffctl.dblock",
    "spiffctl.allinone",
    "spiffctl.probes.http",
    "spiffctl.databases.postgres",
    "spiffctl.databases.mysql",
    "spiffctl.databases.sqlite",
    "spiffctl.lease.stores.database",
)


def test_the_resident_runner_with_a_redis_lease_imports_no_cli_probe_or_database_driver():
    code = textwrap.dedent(
        """
        import json, sys
        import spiffctl.lease.resident, spiffctl.lease.stores.redis, redis
        print(json.dumps(sorted(sys.modules)))
        """
    )
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = json.loads(out)
    assert [m for m in loaded if any(m == n or m.startswith(n + ".") for n in NEVER)] == []


@pytest.fixture
def cluster(tmp_path: Path):
    c = Cluster(tmp_path)
    yield c
    c.close()


def test_the_background_runner_becomes_the_resident_runner_in_place(cluster):
    """Same pid (the orchestrator's, the state file's), a fresh interpreter: the resident module."""
    cluster.prime()
    a = cluster.start("a")
    cluster.wait_worker("a")
    cmdline = Path(f"/proc/{a.pid}/cmdline").read_bytes().split(b"\0")
    assert b"spiffctl.lease.resident" in cmdline and b"background" in cmdline
    state = wait_until(lambda: json.loads((cluster.tmp / "run-a" / "background.json").read_text()), timeout=5)
    assert state["pid"] == a.pid and state["mode"] == "holder"
    assert a.log().count("lease: the lease lives in") == 1  # said once, by the resident
