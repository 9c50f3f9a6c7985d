"""spiffctl owns the schema migration: real PostgreSQL, MariaDB and SQLite, the stand-in ``uv`` and
bin scripts (``STANDIN_MIGRATIONS=true``: a script given ``UPGRADE_DB=true`` would upgrade by
itself, so a replica that let its script upgrade shows up as a second ``uv-upgrade`` record).

Replicas are ``spiffctl run`` processes, each in a process group of its own like a container.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.standins import (
    HEAD,
    REVISIONS,
    at_head,
    find_records,
    set_version,
    standin_env,
    uv_env,
    versions,
    wait_for_record,
)
from tests.support.poll import wait_until
from tests.support.ports import free_port

CLEAN = {k: v for k, v in os.environ.items() if not k.startswith(("SPIFFWORKFLOW_BACKEND_", "SPIFFCTL_", "STANDIN_"))}


class Replica:
    """``spiffctl run --role ROLE`` in its own process group; output to files read at any time."""

    def __init__(self, tmp: Path, name: str, backend: Path, role: str, env: dict[str, str], *args: str) -> None:
        self.out_path = tmp / f"{name}.out"
        self.err_path = tmp / f"{name}.err"
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "spiffctl", "run", "--role", role, "--backend-dir", str(backend), *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def err(self) -> str:
        return self.err_path.read_text()

    def lines(self) -> list[str]:
        return [line for line in self.err().splitlines() if line.startswith("spiffctl:")]

    def wait(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL to the whole group, as an engine kills a container."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)


@pytest.fixture
def replicas() -> Iterator[list[Replica]]:
    started: list[Replica] = []
    yield started
    for replica in started:
        replica.kill()


def env_for(url: str, record: Path, tmp: Path, *, upgrade: bool = True, **standin: object) -> dict[str, str]:
    options: dict[str, object] = {"migrations": True, "exit_after": 0.5, **standin}
    return {
        **CLEAN,
        **uv_env(),
        **standin_env(record, **options),
        "FLASK_SESSION_SECRET_KEY": "session-key-for-tests",
        "SPIFFWORKFLOW_BACKEND_BPMN_SPEC_ABSOLUTE_DIR": str(tmp),
        "SPIFFWORKFLOW_BACKEND_DATABASE_URI": url,
        "SPIFFWORKFLOW_BACKEND_PORT": str(free_port()),
        "SPIFFWORKFLOW_BACKEND_UPGRADE_DB": "true" if upgrade else "false",
        "SPIFFCTL_RUN_DIR": str(tmp / f"run-{free_port()}"),
    }


def upgrades(record: Path, event: str) -> list[dict[str, object]]:
    return find_records(record, role="uv-upgrade", event=event)


def test_replicas_started_together_upgrade_once_and_every_script_gets_upgrade_off(
    fake_backend, standin_record, database, tmp_path, replicas
) -> None:
    _, url = database
    for n in range(3):
        env = env_for(url, standin_record, tmp_path, upgrade_seconds=1.5)
        replicas.append(Replica(tmp_path, f"r{n}", fake_backend, "api", env))
    codes = [r.wait() for r in replicas]
    assert codes == [0, 0, 0], [r.err() for r in replicas]
    assert len(upgrades(standin_record, "start")) == 1
    assert [e["exit_code"] for e in upgrades(standin_record, "exit")] == [0]
    starts = find_records(standin_record, role="api", event="start")
    assert len(starts) == 3
    assert {s["env"]["SPIFFWORKFLOW_BACKEND_UPGRADE_DB"] for s in starts} == {"false"}
    assert versions(url) == [HEAD]
    (holder,) = [r for r in replicas if any("holding the migration lock" in line for line in r.lines())]
    for r in replicas:
        assert any("overridden to false for the api script" in line for line in r.lines()), r.err()
        if r is not holder:
            assert any("another replica applied the upgrade" in line for line in r.lines()), r.err()


def test_a_holder_killed_mid_upgrade_releases_the_lock_and_the_next_replica_finishes(
    fake_backend, standin_record, database, tmp_path, replicas
) -> None:
    kind, url = database
    first = Replica(tmp_path, "first", fake_backend, "api", env_for(url, standin_record, tmp_path, upgrade_seconds=60))
    replicas.append(first)
    wait_for_record(standin_record, role="uv-upgrade", event="revision", timeout=60)  # mid-upgrade
    second = Replica(tmp_path, "second", fake_backend, "api", env_for(url, standin_record, tmp_path, upgrade_seconds=1))
    replicas.append(second)
    wait_until(lambda: "spiffctl:" in second.err(), timeout=30)  # checked its dependencies: now it waits
    killed_at = time.monotonic()
    first.kill()
    code = second.wait()
    _, second_start = upgrades(standin_record, "start")
    assert second_start["monotonic"] > killed_at  # it took the lock only once the holder was gone
    if kind != "postgresql":
        # Alembic assumes non-transactional DDL on MySQL and SQLite: the killed revision's table stays
        # without its alembic_version row, and the next upgrade may trip on it, exactly as with
        # Alembic itself. The handoff is what counts here.
        assert code == 0 or "failed with code 1 while applying" in second.lines()[-1], second.err()
        return
    assert code == 0, second.err()
    assert versions(url) == [HEAD]
    ends = upgrades(standin_record, "exit")
    assert [e["exit_code"] for e in ends] == [0]  # the killed upgrade never reported an exit
    (start,) = find_records(standin_record, role="api", event="start")
    assert start["pid"] == second.pid
    # PostgreSQL: one transaction, the killed upgrade left nothing and all four ran again.
    applied = [r["revision"] for r in find_records(standin_record, role="uv-upgrade", event="revision")]
    assert applied[-len(REVISIONS) :] == list(REVISIONS)


def test_a_waiting_replica_names_the_holder_and_gives_up_after_the_bound(
    fake_backend, standin_record, database, tmp_path, replicas
) -> None:
    kind, url = database
    holder = Replica(
        tmp_path, "holder", fake_backend, "api", env_for(url, standin_record, tmp_path, upgrade_seconds=60)
    )
    replicas.append(holder)
    wait_for_record(standin_record, role="uv-upgrade", event="start", timeout=60)
    env = env_for(url, standin_record, tmp_path)
    env["SPIFFCTL_MIGRATION_TIMEOUT"] = "2"
    waiter = Replica(tmp_path, "waiter", fake_backend, "api", env)
    replicas.append(waiter)
    assert waiter.wait() == 69, waiter.err()
    last = waiter.lines()[-1]
    assert (
        "the migration lock is still held by" in last and "after 2 s" in last and "SPIFFCTL_MIGRATION_TIMEOUT" in last
    )
    if kind == "postgresql":
        assert f"spiffctl migrate on {os.uname().nodename} pid {holder.pid}" in last
    elif kind == "mariadb":
        assert "connection " in last and " from " in last
    else:
        assert f"pid {holder.pid}" in last
    assert not find_records(standin_record, role="api", event="start")


def test_a_failed_upgrade_exits_with_its_code_names_the_revision_and_starts_nothing(
    fake_backend, standin_record, database, tmp_path, replicas
) -> None:
    _, url = database
    env = env_for(url, standin_record, tmp_path, upgrade_seconds=0, upgrade_fail_at=REVISIONS[2])
    replica = Replica(tmp_path, "r", fake_backend, "api", env)
    replicas.append(replica)
    assert replica.wait() == 1
    assert "Traceback" in replica.err()  # the command's own output passed through
    last = replica.lines()[-1]
    assert last == (
        "spiffctl: the database upgrade (`uv run flask db upgrade`) failed with code 1 while applying "
        f"{REVISIONS[1]} -> {REVISIONS[2]}; see its output above; the api script was not started"
    )
    assert not find_records(standin_record, role="api", event="start")
    # The lock was released: the next replica (without the fault) gets it and finishes.
    replicas.append(nxt := Replica(tmp_path, "next", fake_backend, "api", env_for(url, standin_record, tmp_path)))
    assert nxt.wait() == 0, nxt.err()
    assert versions(url) == [HEAD]


def test_sigterm_during_the_upgrade_goes_to_it_and_its_code_comes_back(
    fake_backend, standin_record, pg_database, tmp_path, replicas
) -> None:
    replica = Replica(
        tmp_path, "r", fake_backend, "api", env_for(pg_database, standin_record, tmp_path, upgrade_seconds=60)
    )
    replicas.append(replica)
    wait_for_record(standin_record, role="uv-upgrade", event="revision", timeout=60)
    os.kill(replica.pid, signal.SIGTERM)  # to spiffctl alone, as tini passes it on
    assert replica.wait() == 143
    assert replica.lines()[-1].startswith("spiffctl: stopped by signal 15 during the database upgrade while applying")
    assert [e["exit_code"] for e in upgrades(standin_record, "exit")] == [143]
    assert versions(pg_database) == []  # rolled back
    assert not find_records(standin_record, role="api", event="start")


def test_at_head_there_is_no_upgrade_and_no_app_start(fake_backend, standin_record, database, tmp_path, replicas):
    _, url = database
    at_head(url)
    replica = Replica(tmp_path, "r", fake_backend, "api", env_for(url, standin_record, tmp_path))
    replicas.append(replica)
    assert replica.wait() == 0, replica.err()
    assert not [r for r in find_records(standin_record) if str(r["role"]).startswith("uv-")]
    assert any(f"schema at head ({HEAD})" in line or "no upgrade to run" in line for line in replica.lines())
    (start,) = find_records(standin_record, role="api", event="start")
    assert start["env"]["SPIFFWORKFLOW_BACKEND_UPGRADE_DB"] == "false"


def test_downgrade_db_is_left_to_the_script_with_a_warning(fake_backend, standin_record, tmp_path, replicas):
    url = set_version(f"sqlite:///{tmp_path / 'db.sqlite3'}", HEAD)
    env = env_for(url, standin_record, tmp_path)
    env["SPIFFWORKFLOW_BACKEND_DOWNGRADE_DB"] = "true"
    replica = Replica(tmp_path, "r", fake_backend, "api", env)
    replicas.append(replica)
    assert replica.wait() == 0, replica.err()
    assert any("DOWNGRADE_DB=true" in line and "race" in line for line in replica.lines())
    (start,) = find_records(standin_record, role="api", event="start")
    assert start["env"]["SPIFFWORKFLOW_BACKEND_UPGRADE_DB"] == "true"
    # The script itself ran both (the stand-in script: downgrade, then upgrade).
    assert find_records(standin_record, role="uv-downgrade", event="exit")
    assert upgrades(standin_record, "exit")


@pytest.mark.parametrize("role", ["background", "worker", "api"])
def test_other_roles_wait_for_head_and_start_after_it(
    fake_backend, standin_record, pg_database, shared_redis, tmp_path, replicas, role
) -> None:
    """Background, worker and an API without UPGRADE_DB wait (cheaply: no app start) for head."""
    set_version(pg_database, REVISIONS[0])
    env = env_for(pg_database, standin_record, tmp_path, upgrade=False)
    env.update(
        SPIFFCTL_LOCK="off",
        SPIFFWORKFLOW_BACKEND_CELERY_ENABLED="true",
        SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL=shared_redis,
    )
    waiter = Replica(tmp_path, "waiter", fake_backend, role, env)
    replicas.append(waiter)
    wait_until(lambda: any("waiting for the schema" in line for line in waiter.lines()), timeout=30)
    line = next(line for line in waiter.lines() if "waiting for the schema" in line)
    assert (
        f"at {REVISIONS[0]}, head {HEAD}, 3 migrations left" in line and "no replica holds the migration lock" in line
    )
    assert not find_records(standin_record, role=role, event="start")
    upgrader = Replica(tmp_path, "api", fake_backend, "api", env_for(pg_database, standin_record, tmp_path))
    replicas.append(upgrader)
    assert upgrader.wait() == 0, upgrader.err()
    assert waiter.wait() == 0, waiter.err()
    (upgrade_end,) = upgrades(standin_record, "exit")
    (start,) = [s for s in find_records(standin_record, role=role, event="start") if s["pid"] == waiter.pid]
    # Not before the head, and within the bound of 1 s after it (the poll is 0.25 s).
    assert 0 < start["monotonic"] - upgrade_end["monotonic"] < 1.0
    # No app start while it waited (spiffctl's poll is a query); the script's own wait, when it has
    # one, passed at its first round.
    assert not [r for r in find_records(standin_record, role="uv-current") if r["monotonic"] < start["monotonic"]]
    if role != "api":
        rounds = find_records(standin_record, role=role, event="schema")
        assert [(r["current"], r["head"]) for r in rounds] == [(HEAD, HEAD)]
