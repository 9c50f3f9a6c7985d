"""``spiffctl run --role background`` replicas under faults, against private Redis servers.

Each replica is a real spiffctl process in its own process group (like a container); the
Background script is a stand-in that records start/tick/stop with monotonic timestamps (see
``tests/support/background_standin.py``). Every scenario asserts that no two stand-ins ran at the
same moment. The hand-off on SIGTERM and the failover after SIGKILL also run on PostgreSQL and MariaDB.
TTL is 3 s throughout: renew every 1 s, SIGTERM 0.5 s before and SIGKILL at ~2.77 s after the
last successful renewal's request was sent.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spiffctl.probes.redis import client
from tests.support.poll import wait_until
from tests.support.replicas import (
    REPO,
    Cluster,
    DbCluster,
    Replica,
    alive_workers,
    background_command,
    chaos,
    faulty_command,
    overlap,
    read_runs,
    replica_env,
    touch_keys,
    write_backend,
)
from tests.support.servers.redis import PrivateRedis

TTL = 3.0


@pytest.fixture
def cluster(tmp_path: Path):
    c = Cluster(tmp_path)
    yield c
    c.close()


def test_first_holder_waits_one_ttl_then_standby_names_it(cluster):
    a = cluster.start("a")
    started = time.monotonic()
    first = cluster.wait_worker("a")
    assert first - started >= TTL  # fresh Redis: nothing proves an earlier holder stopped
    assert "no record of a previous lease" in a.log()
    b = cluster.start("b")
    cluster.wait_log(b, "standby: the Background lease is held by")
    line = next(x for x in b.log().splitlines() if "standby:" in x)
    assert f"pid {a.pid} since " in line and "UTC" in line and "epoch 1" in line
    time.sleep(2 * TTL)
    assert b.log().count("standby: the Background lease is held by") == 1  # said once
    assert cluster.workers_of("b") == []
    [worker] = cluster.workers_of("a")
    assert worker.epoch == "1"  # SPIFFCTL_LEASE_EPOCH


@pytest.fixture(params=["redis", "postgres", "mysql"])
def any_cluster(request: pytest.FixtureRequest, tmp_path: Path):
    """A cluster on each store the lease can live in (the database ones: tests/test_guard_db.py)."""
    c = Cluster(tmp_path, ttl=TTL) if request.param == "redis" else DbCluster(tmp_path, request.param, ttl=TTL)
    yield c
    c.close()


def test_holder_sigkill_fails_over_after_the_ttl(any_cluster):
    cluster = any_cluster
    a, _ = cluster.holder_and_standby()
    killed = time.monotonic()
    a.signal(signal.SIGKILL)
    started = cluster.wait_worker("b", timeout=3 * TTL)
    [old] = cluster.workers_of("a")
    if cluster.kind == "redis":  # the key lives on for what was left of its TTL
        assert started - killed <= TTL + 2
        assert old.pid not in alive_workers(cluster.runs())  # the watchdog saw the pipe close
    else:  # the session closes at once; the script lives until its deadline
        assert TTL <= started - killed <= TTL + 2
    assert old.stop is not None and old.stop < started
    cluster.assert_no_overlap()


# What the standby says when the holder lets go, by store.
RELEASE_SEEN = {"redis": "released cleanly", "postgres": "released cleanly", "mysql": "released the lease just before"}


def test_holder_sigterm_hands_off_at_once(any_cluster):
    cluster = any_cluster
    a, b = cluster.holder_and_standby()
    stopped = time.monotonic()
    a.signal(signal.SIGTERM)
    assert a.wait(10) == 128 + signal.SIGTERM  # the script's own code: it died by SIGTERM
    started = cluster.wait_worker("b", timeout=2 * TTL)
    assert started - stopped < TTL  # released, not expired
    assert RELEASE_SEEN[cluster.kind] in b.log()
    assert "lease released" in a.log()
    [old] = cluster.workers_of("a")
    [new] = cluster.workers_of("b")
    if cluster.kind == "redis":
        assert int(new.epoch) == int(old.epoch) + 1
    else:
        assert int(new.epoch) > int(old.epoch)
    cluster.assert_no_overlap()


def test_standby_exits_zero_on_sigterm(cluster):
    _, b = cluster.holder_and_standby()
    b.signal(signal.SIGTERM)
    assert b.wait(5) == 0


@pytest.mark.parametrize("target", ["renewer", "process group"])
def test_frozen_renewer_is_fenced_and_returns_to_standby(cluster, target):
    a, b = cluster.holder_and_standby()
    frozen = time.monotonic()
    if target == "renewer":
        a.signal(signal.SIGSTOP)
    else:
        os.killpg(a.pid, signal.SIGSTOP)  # spiffctl's group; the watchdog has a session of its own
    started = cluster.wait_worker("b", timeout=3 * TTL)
    [old] = cluster.workers_of("a")
    assert old.pid not in alive_workers(cluster.runs())
    assert old.times[-1] < started
    assert old.times[-1] - frozen < TTL  # fenced by the watchdog on the local deadline
    time.sleep(max(0.0, frozen + 2 * TTL - time.monotonic()))
    if target == "renewer":
        a.signal(signal.SIGCONT)
    else:
        os.killpg(a.pid, signal.SIGCONT)
    cluster.wait_log(a, "back to standby")
    cluster.wait_log(a, f"standby: the Background lease is held by {os.uname().nodename} pid {b.pid}")
    assert a.running()
    cluster.assert_no_overlap()


def test_whole_replica_frozen_overlaps_less_than_a_second(cluster):
    a, _ = cluster.holder_and_standby()
    a.signal_all(signal.SIGSTOP)  # like docker pause: renewer, watchdog and script alike
    frozen = time.monotonic()
    cluster.wait_worker("b", timeout=3 * TTL)
    time.sleep(max(0.0, frozen + 2 * TTL - time.monotonic()))
    [old] = cluster.workers_of("a")
    a.signal_all(signal.SIGCONT)
    thawed = time.monotonic()
    wait_until(lambda: old.pid not in alive_workers(cluster.runs()), 2, interval=0.005)
    assert time.monotonic() - thawed < 1.0  # it ran again, briefly, next to b's script
    assert overlap(cluster.runs()) < 1.0, cluster.logs()
    cluster.wait_log(a, "back to standby")


def test_redis_restart_without_persistence(cluster):
    a, b = cluster.holder_and_standby()
    restarted = time.monotonic()
    cluster.redis.restart()
    cluster.wait_log(a, "Redis restarted (new run_id)")
    wait_until(lambda: len(cluster.runs()) == 2, 4 * TTL, what=cluster.logs)
    new = max(cluster.runs().values(), key=lambda r: r.start)
    assert new.start - restarted >= TTL  # the new holder could not prove the old one stopped
    assert "Redis lost its data" in a.log() + b.log()
    cluster.assert_no_overlap()


@pytest.mark.parametrize("fault", ["key-del", "key-set", "key-pexpire"])
def test_a_hand_on_the_lease_key_never_gives_two_scripts(cluster, fault):
    """DEL, SET key x PX 50, PEXPIRE key 1: the standby waits a TTL, the holder fences at once."""
    a, _ = cluster.holder_and_standby()
    [old] = cluster.workers_of("a")
    touched = time.monotonic()
    touch_keys(cluster.url, cluster.key(), fault, random.Random(0))
    wait_until(lambda: len(cluster.runs()) == 2, 3 * TTL, what=cluster.logs)
    new = max(cluster.runs().values(), key=lambda r: r.start)  # a or b: whoever polled first
    assert new.start - touched >= TTL  # not proven: it waited one TTL
    assert "before it was due to expire" in cluster.logs()
    old = cluster.runs()[old.pid]
    assert old.stop is not None and old.stop < new.start
    assert old.stop - touched < TTL / 3 + 1  # fenced at its next renewal, not at its deadline
    assert "lost the lease" in a.log()
    cluster.assert_no_overlap()


def test_redis_unreachable_longer_than_the_ttl(cluster):
    a, b = cluster.holder_and_standby()
    cluster.redis.freeze()  # requests hang until they time out
    frozen = time.monotonic()
    try:
        [old] = cluster.workers_of("a")
        wait_until(lambda: old.pid not in alive_workers(cluster.runs()), 2 * TTL)
        assert old.times[-1] - frozen < TTL
        state = json.loads((cluster.tmp / "run-a" / "background.json").read_text())
        assert state["store"] is False
        time.sleep(max(0.0, frozen + 2 * TTL - time.monotonic()))
    finally:
        cluster.redis.thaw()
    wait_until(lambda: len(cluster.runs()) == 2, 3 * TTL, what=cluster.logs)
    assert "cannot renew the lease" in a.log()
    assert "could not renew" in a.log()  # the reason, logged when going back to standby
    assert a.running() and b.running()
    cluster.assert_no_overlap()


def test_script_exiting_by_itself_releases_and_passes_its_code(cluster):
    cluster.prime()
    a = cluster.start("a", STANDIN_EXIT_AFTER="0.5")
    assert a.wait(10) == 3
    c = client(cluster.url, 1.0)
    key = cluster.key()
    assert c.get(key) is None and c.get(f"{key}:released") is not None


def test_killed_watchdog_is_backed_up_by_the_renewer(cluster):
    a, _ = cluster.holder_and_standby()
    [old] = cluster.workers_of("a")
    watchdogs = [p for p in a.processes() if b"spiffctl.lease.watchdog" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert len(watchdogs) == 1
    os.kill(watchdogs[0], signal.SIGKILL)
    wait_until(lambda: old.pid not in alive_workers(cluster.runs()), 3)
    cluster.wait_log(a, "watchdog died")
    wait_until(lambda: len(cluster.runs()) == 2, 3 * TTL)
    cluster.assert_no_overlap()


def test_state_file_for_healthcheck(cluster):
    a, _ = cluster.holder_and_standby()

    def state(name: str) -> dict:
        return json.loads((cluster.tmp / name / "background.json").read_text())

    sa = wait_until(lambda: (s := state("run-a"))["child_pid"] and s, timeout=5, what="holder state with its child")
    sb = wait_until(lambda: (s := state("run-b"))["holder"] and s, timeout=5, what="standby state naming the holder")
    [worker] = cluster.workers_of("a")
    assert sa["mode"] == "holder" and sa["pid"] == a.pid and sa["store"] is True and sa["epoch"] >= 1
    assert os.getpgid(worker.pid) == sa["child_pid"]
    assert sb["mode"] == "standby" and sb["child_pid"] is None and f"pid {a.pid}" in sb["holder"]
    for s in (sa, sb):
        assert time.time() - s["updated"] < 3 * s["interval"] + 1
    # The reader of this file is `spiffctl healthcheck`: holder and standby are both healthy.
    for name in ("run-a", "run-b"):
        env = {**os.environ, "SPIFFCTL_RUN_DIR": str(cluster.tmp / name)}
        cmd = [sys.executable, "-m", "spiffctl", "healthcheck", "--role", "background"]
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=10)
        assert result.returncode == 0, result.stdout + result.stderr


def test_two_installations_on_one_redis_both_run(tmp_path):
    c = Cluster(tmp_path)
    try:
        one = c.start("one", db="one", STANDIN_RECORDS=str(tmp_path / "one.txt"))
        two = c.start("two", db="two", STANDIN_RECORDS=str(tmp_path / "two.txt"))
        wait_until(lambda: read_runs(tmp_path / "one.txt") and read_runs(tmp_path / "two.txt"), 3 * TTL)
        assert c.key(db="one") != c.key(db="two")
        assert one.running() and two.running()
        assert "standby" not in one.log() + two.log()
    finally:
        c.close()


def test_password_never_printed(tmp_path):
    secret = "s3cr3t-Pa55word"
    c = Cluster(tmp_path, password=secret)
    try:
        c.prime()
        a = c.start("a")
        c.wait_worker("a")
        b = c.start("b")
        c.wait_log(b, "standby")
        wrong = c.start("wrong", url=f"redis://:wrong-{secret}@127.0.0.1:{c.redis.port}/0")
        assert wrong.wait(10) == 69
        assert "refused" in wrong.log()
        a.signal(signal.SIGTERM)
        a.wait(10)
        for r in c.replicas:
            assert secret not in r.log()
    finally:
        c.close()


@pytest.mark.parametrize(
    ("first_line", "code", "reason"),
    [("#!/nonexistent/interpreter", 127, "No such file or directory"), ("echo no #! line", 126, "Exec format error")],
)
def test_script_that_cannot_be_executed_releases_and_exits(cluster, first_line, code, reason):
    cluster.prime()
    script = cluster.tmp / "backend" / "bin" / "start_blocking_apscheduler"
    script.write_text(first_line + "\n")  # exists and is executable: only exec itself fails
    a = cluster.start("a")
    assert a.wait(10) == code
    [line] = [x for x in a.log().splitlines() if "cannot execute" in x]
    assert line == f"spiffctl: cannot execute {script}: {reason} (check its #! line)"
    c = client(cluster.url, 1.0)
    assert c.get(cluster.key()) is None and c.get(f"{cluster.key()}:released") is not None


def test_a_bug_while_holding_fences_the_script_and_exits_70(tmp_path):
    secret = "bug-Pa55word"
    c = Cluster(tmp_path, password=secret)
    try:
        c.prime()
        a = c.start("a", faulty_command(tmp_path / "backend"), FAULT_AT_RENEWAL="2")
        c.wait_worker("a")
        assert a.wait(3 * TTL) == 70
        assert a.processes() == []  # the watchdog and the whole script group went first
        assert alive_workers(c.runs()) == []
        lines = a.log().strip().splitlines()
        assert lines[-1].startswith("spiffctl: internal error: TypeError: unsupported operand"), a.log()
        assert lines[-1].endswith("(set SPIFFCTL_DEBUG=1 for a traceback)")
        assert "Traceback" not in a.log() and secret not in a.log() and "***" in lines[-1]
        assert "unreachable" not in a.log() and "cannot renew" not in a.log()  # never disguised as an outage
    finally:
        c.close()


def test_a_bug_on_standby_exits_70_and_leaves_the_holder_alone(cluster):
    a, _ = cluster.holder_and_standby()
    b = cluster.start("bugged", faulty_command(cluster.tmp / "backend"), FAULT_AT_ACQUIRE="1")
    assert b.wait(10) == 70
    assert "internal error: TypeError" in b.log() and "standby:" not in b.log()
    assert a.running() and len(alive_workers(cluster.runs())) == 1


def test_a_bug_with_debug_shows_the_traceback_after_fencing(cluster):
    cluster.prime()
    a = cluster.start("a", faulty_command(cluster.tmp / "backend"), FAULT_AT_RENEWAL="1", SPIFFCTL_DEBUG="1")
    cluster.wait_worker("a")
    assert a.wait(3 * TTL) != 0
    assert "Traceback (most recent call last)" in a.log() and "TypeError: unsupported operand" in a.log()
    assert a.processes() == []


def _cli(tmp_path: Path, timeout: float = 15, **env: str) -> subprocess.CompletedProcess[str]:
    write_backend(tmp_path / "backend")
    full = replica_env(tmp_path, "cli", "redis://127.0.0.1:1/0")
    full.update(env)
    return subprocess.run(
        background_command(tmp_path / "backend"),
        env={k: v for k, v in full.items() if v != "-unset-"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("variable", "value", "expect"),
    [
        ("SPIFFCTL_LOCK_TTL", "abc", "SPIFFCTL_LOCK_TTL"),
        ("SPIFFCTL_LOCK_TTL", "1", "SPIFFCTL_LOCK_TTL"),
        ("SPIFFCTL_LOCK_TTL", "nan", "SPIFFCTL_LOCK_TTL"),
        ("SPIFFCTL_LOCK_URL", "http://cache:6379", "neither a Redis nor a database URL"),
        ("SPIFFCTL_LOCK_URL", "redis://:hunter22@cache:notaport/0", "malformed"),
        ("SPIFFCTL_LOCK_URL", "redis://cache:6379/zero", "malformed"),
        ("SPIFFCTL_LOCK", "maybe", "not one of on, off"),
        ("SPIFFCTL_LOCK_URL", "postgresql://u:hunter22@db:notaport/x", "malformed"),
        ("SPIFFCTL_LOCK_URL", "sqlite:///:memory:", "in-memory SQLite database cannot hold the lease"),
        ("SPIFFCTL_LOCK_URL", "sqlite://", "in-memory SQLite database cannot hold the lease"),
        ("SPIFFCTL_LOCK_URL", "sqlite:///relative/db.sqlite3", "needs the database file's absolute path"),
        ("SPIFFCTL_LOCK_URL", "sqlite://relative/db.sqlite3", "needs the database file's absolute path"),
    ],
)
def test_bad_lock_settings_give_one_line(tmp_path, variable, value, expect):
    result = _cli(tmp_path, **{variable: value})
    assert result.returncode == 78
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], result.stderr
    assert "hunter22" not in result.stderr


def test_evicting_redis_refused_with_the_fix(tmp_path, make_server):
    r = make_server(PrivateRedis, maxmemory_policy="volatile-lru")
    result = _cli(tmp_path, SPIFFCTL_LOCK_URL=r.url)
    assert result.returncode == 78
    assert "volatile-lru" in result.stderr and "noeviction" in result.stderr


def test_lock_off_warns_and_execs(tmp_path):
    write_backend(tmp_path / "backend")
    env = replica_env(tmp_path, "off", "redis://127.0.0.1:1/0", SPIFFCTL_LOCK="off")
    proc = Replica(tmp_path, "off", env).start()
    try:
        wait_until(lambda: read_runs(tmp_path / "records.txt"), 10, what=proc.log)
        assert "SPIFFCTL_LOCK=off" in proc.log() and "warning" in proc.log()
        state = json.loads((tmp_path / "run-off" / "background.json").read_text())
        assert state["mode"] == "unleased" and state["pid"] == proc.pid
        assert Path(f"/proc/{proc.pid}/cmdline").read_bytes().startswith(b"bash")  # exec'd in place
    finally:
        proc.destroy()


def test_three_replicas_under_random_faults(cluster):
    """Kill, stop, freeze and restart replicas and Redis at random; never two schedulers."""
    faults = chaos(cluster, float(os.environ.get("CHAOS_SECONDS", "30")), int(os.environ.get("CHAOS_SEED", "4")))
    # Afterwards the cluster settles on exactly one scheduler.
    wait_until(lambda: len(alive_workers(cluster.runs())) == 1, 4 * TTL, what=cluster.logs)
    runs = cluster.runs()
    assert len(runs) >= 3, faults  # failovers happened
    assert overlap(runs) == 0, (faults, cluster.logs())
