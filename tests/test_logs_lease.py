"""issue 19: every lease transition is one JSON event line with its epoch, store, holder and TTL."""

from __future__ import annotations

import json
import signal
from typing import Any

import pytest

from tests.support.replicas import Cluster, Replica

JSON = {"SPIFFCTL_LOG_FORMAT": "json"}


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    yield c
    c.close()


def events(replica: Replica) -> list[dict[str, Any]]:
    """spiffctl's own lines of a replica (the stand-in script's lines pass through as they are)."""
    own = [json.loads(line) for line in replica.log().splitlines() if line.startswith("{")]
    assert own and all(e["logger"] == "spiffctl" and e["role"] == "background" for e in own)
    return [e for e in own if "event" in e]


def named(replica: Replica, name: str) -> list[dict[str, Any]]:
    return [e for e in events(replica) if e["event"] == name]


def holder_and_standby(cluster: Cluster) -> tuple[Replica, Replica]:
    cluster.prime()
    a = cluster.start("a", **JSON)
    cluster.wait_worker("a", timeout=2 * cluster.ttl + 5)
    b = cluster.start("b", **JSON)
    cluster.wait_log(b, '"event": "standby"')
    return a, b


def test_acquire_standby_and_handoff_on_sigterm(cluster):
    a, b = holder_and_standby(cluster)
    [acquired] = named(a, "acquired")
    epoch = acquired["epoch"]
    assert acquired["ttl"] == cluster.ttl and "Redis" in acquired["store"] and f"pid {a.pid}" in acquired["holder"]
    [standby] = named(b, "standby")
    assert f"pid {a.pid}" in standby["holder"] and standby["epoch"] is None
    a.signal(signal.SIGTERM)
    a.wait(10)
    cluster.wait_log(b, '"event": "acquired"')
    [handed] = named(a, "handed-off")
    assert handed["epoch"] == epoch and handed["released"] is True and handed["level"] == "INFO"
    [taken] = named(b, "acquired")
    assert taken["epoch"] == epoch + 1 and f"pid {b.pid}" in taken["holder"]


def test_failover_on_sigkill(cluster):
    a, b = holder_and_standby(cluster)
    [acquired] = named(a, "acquired")
    a.signal(signal.SIGKILL)
    cluster.wait_log(b, '"event": "acquired"', timeout=3 * cluster.ttl)
    [taken] = named(b, "acquired")
    assert taken["epoch"] == acquired["epoch"] + 1
    assert not named(a, "handed-off") and not named(a, "released")  # it had no chance to say anything
