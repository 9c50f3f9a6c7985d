"""The warm standby (issue 17) with real replicas, a private Redis and the stand-in backend venv
(tests/standins/site): the scheduler starts in an app loaded ahead of the lease."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.poll import wait_until
from tests.support.replicas import WARM_FAULTS, Cluster, DbCluster, Replica, alive_workers, chaos, overlap

TTL = 3.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, ttl=TTL, warm=True)
    try:
        yield c
    finally:
        c.close()


def warm_pair(cluster: Cluster) -> tuple[Replica, Replica]:
    a, b = cluster.holder_and_standby()
    cluster.wait_log(b, "warm standby: the app is loaded", timeout=30)
    return a, b


def scheduler_start_after(cluster: Cluster, name: str, sig: int, a: Replica) -> float:
    sent = time.monotonic()
    a.signal(sig)
    wait_until(lambda: cluster.workers_of(name), 3 * TTL + 10, what=cluster.logs)
    return cluster.workers_of(name)[0].start - sent


@pytest.fixture(params=["postgres", "mysql"])
def db_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DbCluster]:
    """The lease in the backend's database (private PostgreSQL or MariaDB), no Redis."""
    c = DbCluster(tmp_path, request.param, ttl=TTL, warm=True)
    try:
        yield c
    finally:
        c.close()


def test_failover_after_the_holders_sigkill_within_ttl_plus_2s(cluster):
    a, b = warm_pair(cluster)
    gap = scheduler_start_after(cluster, "b", signal.SIGKILL, a)
    assert gap <= TTL + 2, cluster.logs()
    assert "starting the scheduler in the warm child" in b.log()
    cluster.assert_no_overlap()


def test_handoff_after_the_holders_sigterm_within_2s(cluster):
    a, _b = warm_pair(cluster)
    gap = scheduler_start_after(cluster, "b", signal.SIGTERM, a)
    assert gap <= 2, cluster.logs()
    assert a.wait(15) == 143  # its scheduler was stopped by SIGTERM; spiffctl passes its code on
    cluster.assert_no_overlap()


def test_database_lease_fails_over_and_hands_off_warm(db_cluster):
    cluster = db_cluster
    a, b = warm_pair(cluster)
    gap = scheduler_start_after(cluster, "b", signal.SIGKILL, a)
    assert gap <= TTL + 2, cluster.logs()
    # b holds now; a new standby c loads its app, then b hands the lease to it.
    c = cluster.start("c")
    cluster.wait_log(c, "warm standby: the app is loaded", timeout=30)
    gap = scheduler_start_after(cluster, "c", signal.SIGTERM, b)
    assert gap <= 2, cluster.logs()
    assert "starting the scheduler in the warm child" in c.log()
    cluster.assert_no_overlap()


def test_whole_holder_replica_frozen_then_thawed_never_overlaps(cluster):
    a, b = warm_pair(cluster)
    a.signal_all(signal.SIGSTOP)  # like docker pause: spiffctl, watchdog and the scheduling warm child
    frozen = time.monotonic()
    wait_until(lambda: cluster.workers_of("b"), 3 * TTL + 10, what=cluster.logs)
    time.sleep(max(0.0, frozen + 2 * TTL - time.monotonic()))  # frozen well past its deadline
    [old] = cluster.workers_of("a")
    a.signal_all(signal.SIGCONT)
    wait_until(lambda: old.pid not in alive_workers(cluster.runs()), 5, interval=0.005, what=cluster.logs)
    cluster.wait_log(a, "back to standby")
    wait_until(lambda: a.log().count("warm standby: the app is loaded") >= 1, 30, what=cluster.logs)
    assert len(cluster.workers_of("b")) == 1 and b.running()
    cluster.assert_no_overlap()


def test_chaos_with_warm_children_never_runs_two_schedulers(cluster):
    """Kill, stop and freeze replicas and their warm children at random; never two schedulers.

    A warm child not told to go writes no records, so only started schedulers count."""
    seconds = float(os.environ.get("CHAOS_SECONDS", "30"))
    faults = chaos(cluster, seconds, int(os.environ.get("CHAOS_SEED", "7")), WARM_FAULTS)
    wait_until(lambda: len(alive_workers(cluster.runs())) == 1, 6 * TTL + 20, what=lambda: (faults, cluster.logs()))
    runs = cluster.runs()
    assert len(runs) >= 3, faults  # failovers happened
    assert overlap(runs) == 0, (faults, cluster.logs())


def test_a_warm_child_that_was_not_told_to_go_is_not_a_scheduler(cluster):
    _a, _b = warm_pair(cluster)
    assert cluster.workers_of("b") == []  # loaded, no start record, no ticks
    assert len(cluster.workers_of("a")) == 1
    path = cluster.tmp / "run-b" / "background.json"
    wait_until(lambda: json.loads(path.read_text()).get("warm") == "warm", 5, what=path.read_text)
    state = json.loads(path.read_text())
    assert state["mode"] == "standby" and state["warm_since"] > 0
    assert "standby, warm since " in healthcheck(cluster, "b")


def healthcheck(cluster: Cluster, name: str) -> str:
    env = {**os.environ, "SPIFFCTL_RUN_DIR": str(cluster.tmp / f"run-{name}")}
    cmd = [sys.executable, "-m", "spiffctl", "healthcheck", "--role", "background"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_a_standby_still_loading_says_so_and_is_healthy(cluster):
    cluster.prime()
    cluster.start("a")
    cluster.wait_worker("a", timeout=30)
    b = cluster.start("b", STANDIN_CREATE_APP_CPU="60")  # killed long before it is loaded
    cluster.wait_log(b, "warm child (pid", timeout=30)
    wait_until(lambda: "loading the app for" in healthcheck(cluster, "b"), 10, what=cluster.logs)
    assert "warm standby: the app is loaded" not in b.log()


def test_status_line_of_a_warm_standby(tmp_path):
    """``spiffctl status`` (all-in-one) reads the same state file: ", standby, warm since ..."."""
    from spiffctl.commands.status import line
    from spiffctl.state import role_run_dir

    run_dir = role_run_dir(tmp_path, "background")
    run_dir.mkdir(parents=True)
    since = time.time() - 30
    info = {"name": "background", "statename": "RUNNING", "pid": 4242, "now": 100, "start": 40}
    record = {"mode": "standby", "pid": 4242, "warm": "warm", "warm_since": since}
    (run_dir / "background.json").write_text(json.dumps(record))
    assert line(info, tmp_path).startswith("background  RUNNING   pid 4242, uptime 0:01:00, standby, warm since ")
    (run_dir / "background.json").write_text(json.dumps({**record, "warm": "loading"}))
    assert ", standby, loading the app for 3" in line(info, tmp_path)
    (run_dir / "background.json").write_text(json.dumps({**record, "mode": "holder"}))
    assert line(info, tmp_path) == "background  RUNNING   pid 4242, uptime 0:01:00"


def test_sigkilled_standby_leaves_nothing_behind(cluster):
    _a, b = warm_pair(cluster)
    b.signal(signal.SIGKILL)  # spiffctl only: its watchdog and warm child must go by themselves
    wait_until(lambda: not b.processes(), 10, what=cluster.logs)


def test_standby_warm_child_crash_rewarms_and_leaves_the_lease_alone(cluster):
    _a, b = warm_pair(cluster)
    state = json.loads((cluster.tmp / "run-b" / "background.json").read_text())
    children = b.warm_children()
    assert children, cluster.logs()
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    cluster.wait_log(b, "the warm child exited with code", timeout=10)
    wait_until(lambda: b.log().count("warm standby: the app is loaded") >= 2, 30, what=cluster.logs)
    assert len(cluster.workers_of("a")) == 1 and cluster.workers_of("b") == []
    assert state["mode"] == "standby"


def test_standby_that_cannot_load_retries_with_backoff_says_why_without_secrets(cluster):
    cluster.prime()
    a = cluster.start("a")
    cluster.wait_worker("a", timeout=30)
    fail = cluster.tmp / "create_app_fails"
    fail.touch()
    uri = "postgresql://spiff:Planted-Secret-4711@db.invalid:5432/spiff"
    # Another database URL would be another installation (another key): share a's lease.
    b = cluster.start(
        "b", STANDIN_CREATE_APP_FAIL=str(fail), SPIFFWORKFLOW_BACKEND_DATABASE_URI=uri, SPIFFCTL_LOCK_KEY=cluster.key()
    )
    cluster.wait_log(b, "the warm child could not load the app: RuntimeError: stand-in create_app failed", 30)
    wait_until(lambda: b.log().count("could not load the app") >= 2, 30, what=cluster.logs)  # retried
    fail.unlink()
    cluster.wait_log(b, "warm standby: the app is loaded", timeout=60)
    assert "Planted-Secret-4711" not in b.log()
    assert len(cluster.workers_of("a")) == 1 and cluster.workers_of("b") == [] and a.running()


@pytest.mark.parametrize("lock", ["on", "off"])
def test_import_failure_falls_back_to_the_script(tmp_path, lock):
    c = Cluster(tmp_path, ttl=TTL, warm=True)
    try:
        # A venv whose python has no backend package: the warm child cannot import its entry points.
        (c.tmp / "backend" / ".venv" / "bin" / "python").write_text(
            "#!/bin/sh\nPYTHONPATH= exec " + sys.executable + ' -S "$@"\n'
        )
        c.prime()
        a = c.start("a", **({"SPIFFCTL_LOCK": "off"} if lock == "off" else {}))
        c.wait_log(a, "warm start is not possible (ModuleNotFoundError", timeout=30)
        if lock == "on":
            c.wait_log(a, "started start_blocking_apscheduler", timeout=30)
        else:  # the exec'd warm child execs the script in its place
            c.wait_log(a, "bin/start_blocking_apscheduler instead", timeout=30)
        c.wait_worker("a", timeout=30)
        assert "Traceback" not in a.log()
    finally:
        c.close()


def test_script_mode_runs_the_stock_script(tmp_path):
    c = Cluster(tmp_path, ttl=TTL, warm=True)
    try:
        c.prime()
        a = c.start("a", SPIFFCTL_BACKGROUND_START="script")
        c.wait_log(a, "started start_blocking_apscheduler", timeout=20)
        c.wait_worker("a", timeout=30)  # after the script's schema wait, sleep and app start
        assert "warm" not in a.log()
        assert not any("warm.py" in Path(f"/proc/{p}/cmdline").read_text() for p in a.processes())
    finally:
        c.close()


def test_bad_start_mode_is_78(tmp_path):
    c = Cluster(tmp_path, ttl=TTL)
    try:
        a = c.start("a", SPIFFCTL_BACKGROUND_START="hot")
        assert a.wait(30) == 78
        assert "SPIFFCTL_BACKGROUND_START: 'hot' is not one of warm, script" in a.log()
        assert "Traceback" not in a.log()
    finally:
        c.close()


def test_stale_connections_of_a_standby_do_not_fail_its_first_jobs(tmp_path):
    """Every session of the standby's app terminated while it waits: its first jobs still succeed.

    The stand-in app keeps the connection it made while loading in its pool (no pre-ping, like the
    backend's default): without the dispose before ``start_apscheduler`` the first job fails.
    The app's database is a fresh one on the shared PostgreSQL; only its own sessions are ended."""
    import uuid

    import psycopg

    name = f"warm_{uuid.uuid4().hex[:12]}"
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"

    def terminate() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))

    c = Cluster(tmp_path, ttl=TTL, warm=True)
    try:
        extra = {"SPIFFWORKFLOW_BACKEND_DATABASE_URI": url, "STANDIN_APP_DB": "true"}
        c.prime()
        a = c.start("a", **extra)
        c.wait_worker("a", timeout=30)
        b = c.start("b", **extra)
        c.wait_log(b, "warm standby: the app is loaded", timeout=30)
        terminate()
        a.signal(signal.SIGTERM)
        jobs = c.tmp / "records.txt"

        def b_jobs() -> list[str]:
            pids = {r.pid for r in c.workers_of("b")}
            return [
                ln.split()[3]
                for ln in jobs.read_text().splitlines()
                if ln.startswith("job ") and int(ln.split()[2]) in pids
            ]

        wait_until(lambda: len(b_jobs()) >= 2, 20, what=c.logs)
        assert b_jobs()[:2] == ["ok", "ok"], c.logs()
    finally:
        c.close()
        terminate()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")


@pytest.mark.parametrize("lock", ["off", "sqlite"])
def test_all_in_one_background_starts_its_scheduler_one_app_start_after_the_api_answers(tmp_path, lock):
    """Once the API answers, the Background's scheduler starts in a warm child, never through the
    stock script: without a lease the warm child is exec'd and starts it after one app start; with
    the lease in the SQLite database the warm child loads while the first grant is proven."""
    from tests.standins import read_records
    from tests.support.allinone import running, scheduler_starts, warm_env

    env = warm_env(
        tmp_path,
        STANDIN_NAME="all",
        STANDIN_API_STARTUP_DELAY="2",
        SPIFFCTL_LOCK_TTL="3",
        **({"SPIFFCTL_LOCK": "off"} if lock == "off" else {}),
    )
    with running(tmp_path, env, "--wait-timeout", "30") as run:
        run.wait_for(r"^api \| api ready")
        wait_until(lambda: scheduler_starts(tmp_path), 30, what=run.lines)
        assert not [r for r in read_records(tmp_path / "record") if r["role"] == "background"]  # no script
    (api_ready,) = [r for r in read_records(tmp_path / "record") if r["role"] == "api" and r["event"] == "ready"]
    assert scheduler_starts(tmp_path)[0] > api_ready["monotonic"]


def test_bad_start_mode_is_78_in_the_all_in_one_before_any_role_starts(tmp_path):
    import subprocess

    from tests.support.allinone import base_env, spiffctl

    env = base_env(tmp_path, SPIFFCTL_BACKGROUND_START="hot")
    r = subprocess.run(
        spiffctl("run", "--role", "all", "--no-wait"), env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 78, r.stderr
    assert "SPIFFCTL_BACKGROUND_START: 'hot' is not one of warm, script" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "record").exists()  # no role started


@pytest.mark.parametrize("importable", [True, False])
def test_without_a_lease_the_warm_childs_own_lines_follow_the_log_format(tmp_path, importable):
    c = Cluster(tmp_path, ttl=TTL, warm=True)
    try:
        if not importable:
            (c.tmp / "backend" / ".venv" / "bin" / "python").write_text(
                "#!/bin/sh\nPYTHONPATH= exec " + sys.executable + ' -S "$@"\n'
            )
        c.prime()
        a = c.start("a", SPIFFCTL_LOCK="off", SPIFFCTL_LOG_FORMAT="json")
        event = "started" if importable else "warm-fallback"
        c.wait_log(a, f'"event": "{event}"', timeout=30)
        [line] = [json.loads(x) for x in a.log().splitlines() if f'"event": "{event}"' in x]
        assert line["logger"] == "spiffctl" and line["role"] == "background" and line["timestamp"].endswith("Z")
        assert line.get("warm") is True if importable else "ModuleNotFoundError" in line["reason"]
        assert not [x for x in a.log().splitlines() if x.startswith("spiffctl:")]
    finally:
        c.close()
