"""``spiffctl run --role background`` replicas whose lease lives in the database (no Redis at all).

The scenarios of tests/test_guard.py, on private PostgreSQL and MariaDB servers (and SQLite on
one host): every one asserts that no two stand-in scripts ran at the same moment. TTL 3 s. The
hand-off on SIGTERM and the failover after SIGKILL run in tests/test_guard.py, on every store.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.support.poll import wait_until
from tests.support.replicas import DB_FAULTS, DbCluster, Replica, chaos, overlap, replica_env, write_backend
from tests.support.servers.postgres import PrivatePostgres

TTL = 3.0


@pytest.fixture(params=["postgres", "mysql"])
def cluster(request: pytest.FixtureRequest, tmp_path: Path):
    c = DbCluster(tmp_path, request.param, ttl=TTL)
    yield c
    c.close()


@pytest.fixture
def pg_cluster(tmp_path: Path):
    c = DbCluster(tmp_path, "postgres", ttl=TTL)
    yield c
    c.close()


def test_first_holder_waits_one_ttl_and_says_where_the_lease_lives(cluster):
    a = cluster.start("a")
    started = time.monotonic()
    first = cluster.wait_worker("a")
    assert first - started >= TTL  # nothing proves that an earlier holder's script is gone
    store = "PostgreSQL postgresql://" if cluster.kind == "postgres" else "MySQL mysql://"
    assert f"the lease lives in {store}" in a.log() and "(SPIFFWORKFLOW_BACKEND_DATABASE_URI)" in a.log()
    b = cluster.start("b")
    cluster.wait_log(b, "standby: the Background lease is held by")
    line = next(x for x in b.log().splitlines() if "standby:" in x)
    if cluster.kind == "postgres":
        assert f"pid {a.pid}" in line and "epoch " in line
    else:
        assert "connection " in line
    time.sleep(TTL)
    assert cluster.workers_of("b") == []
    [worker] = cluster.workers_of("a")
    assert int(worker.epoch) > 0  # SPIFFCTL_LEASE_EPOCH


def test_session_terminated_by_the_server(cluster):
    a, _ = cluster.holder_and_standby()
    assert cluster.terminate_sessions() >= 2
    cluster.wait_log(a, "back to standby", timeout=4 * TTL)
    assert "our database session failed" in a.log()
    wait_until(lambda: len(cluster.runs()) == 2, 4 * TTL, what=cluster.logs)
    cluster.assert_no_overlap()


def test_frozen_renewer_is_fenced_and_dropped_by_the_server(cluster):
    a, _ = cluster.holder_and_standby()
    frozen = time.monotonic()
    a.signal(signal.SIGSTOP)
    started = cluster.wait_worker("b", timeout=4 * TTL)
    [old] = cluster.workers_of("a")
    assert old.times[-1] < started
    assert old.times[-1] - frozen < TTL  # fenced by the watchdog on the local deadline
    a.signal(signal.SIGCONT)
    cluster.wait_log(a, "back to standby")
    assert a.running()
    cluster.assert_no_overlap()


def test_whole_replica_frozen_overlaps_less_than_a_second(pg_cluster):
    cluster = pg_cluster
    a, _ = cluster.holder_and_standby()
    a.signal_all(signal.SIGSTOP)
    frozen = time.monotonic()
    cluster.wait_worker("b", timeout=4 * TTL)
    time.sleep(max(0.0, frozen + 3 * TTL - time.monotonic()))
    a.signal_all(signal.SIGCONT)
    assert overlap(cluster.runs()) < 1.0, cluster.logs()
    cluster.wait_log(a, "back to standby")


def test_database_restart(pg_cluster):
    cluster = pg_cluster
    cluster.holder_and_standby()
    restarted = time.monotonic()
    cluster.server.restart()
    wait_until(lambda: len(cluster.runs()) == 2, 5 * TTL, what=cluster.logs)
    new = max(cluster.runs().values(), key=lambda r: r.start)
    assert new.start - restarted >= TTL  # a restart proves nothing about the old holder's script
    cluster.assert_no_overlap()


def test_database_unreachable_longer_than_the_ttl(pg_cluster):
    cluster = pg_cluster
    cluster.holder_and_standby()
    cluster.server.stop()
    time.sleep(2 * TTL)
    [old] = cluster.workers_of("a")
    assert old.stop is not None  # fenced: the lease could not be renewed
    assert cluster.workers_of("b") == []
    cluster.server.start()
    wait_until(lambda: len(cluster.runs()) == 2, 5 * TTL, what=cluster.logs)
    cluster.assert_no_overlap()


def test_sqlite_on_one_host(tmp_path):
    backend = write_backend(tmp_path / "backend")
    assert backend.exists()

    def start(name: str) -> Replica:
        env = replica_env(tmp_path, name, "unused", ttl=TTL)
        del env["SPIFFCTL_LOCK_URL"]
        return Replica(tmp_path, name, env).start()

    records = tmp_path / "records.txt"
    a = start("a")
    b = None
    try:
        wait_until(lambda: records.exists() and "a" in records.read_text(), 4 * TTL)
        b = start("b")
        wait_until(lambda: "standby: the Background lease is held by" in b.log(), 10)
        assert f"pid {a.pid}" in b.log() and "SQLite" in a.log()
        stopped = time.monotonic()
        a.signal(signal.SIGTERM)
        a.wait(10)
        wait_until(lambda: "released cleanly" in b.log(), TTL, what=b.log)
        assert time.monotonic() - stopped < TTL
        from tests.support.replicas import read_runs

        assert overlap(read_runs(records)) == 0
    finally:
        a.destroy()
        if b is not None:
            b.destroy()


def test_three_replicas_under_random_faults(cluster):
    seed = int(os.environ.get("SPIFFCTL_CHAOS_SEED", "13"))
    faults = chaos(cluster, 25, seed, DB_FAULTS)
    time.sleep(TTL)
    assert overlap(cluster.runs()) == 0, f"seed {seed}, faults {faults}\n{cluster.logs()}"
    assert cluster.runs(), faults  # sessions terminated every few seconds leave little room, but some


def test_private_postgres_is_used(pg_cluster):
    assert isinstance(pg_cluster.server, PrivatePostgres) and "127.0.0.1" in pg_cluster.url
