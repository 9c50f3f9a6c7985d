"""``spiffctl run --role all`` end to end with the stand-in bin scripts."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spiffctl.allinone.supervisor import current_umask
from tests.standins import at_head, read_records, uv_env
from tests.support.allinone import BACKEND, base_env, records, running, spiffctl
from tests.support.poll import wait_until
from tests.support.procs import pid_alive

CELERY = {"SPIFFWORKFLOW_BACKEND_CELERY_ENABLED": "true", "SPIFFCTL_LOCK": "off"}
ROLES3 = ("api", "background", "worker")


def run_once(env: dict[str, str], *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        spiffctl("run", "--role", "all", *args), env=env, capture_output=True, text=True, timeout=timeout
    )


def wait_gone(pids: list[int], timeout: float = 5.0) -> None:
    def still() -> list[int]:
        return [p for p in pids if pid_alive(p)]

    wait_until(
        lambda: not still(), timeout, what=lambda: f"a role, its child or the orphan outlived the run: {still()}"
    )


def test_three_roles_start_with_prefixed_lines_and_stop_on_sigterm(tmp_path):
    env = base_env(tmp_path, **CELERY, STANDIN_WORKER_SPAWN_CHILD="true", STANDIN_BACKGROUND_LINGER="true")
    with running(tmp_path, env, "--no-wait") as run:
        for role in ROLES3:
            run.wait_for(rf"^{role} \| {role} ready pid=\d+$", stream="out")
            run.wait_for(rf"^{role} \| {role} on stderr$", stream="err")
        wait_until(lambda: len([r for r in records(tmp_path) if r[1] in ("child", "orphan")]) == 2)
        pids = [pid for _, _, pid in records(tmp_path)]
        assert len(pids) == 5  # three roles, the worker's child, the background's orphan
        assert all(pid_alive(p) for p in pids)
        started = time.monotonic()
        run.terminate()
        assert run.wait(15) == 0
        assert time.monotonic() - started < 8 + 2  # the default grace, with slack
        wait_gone(pids, 1.0)
        for role in ROLES3:
            run.wait_for(rf"^{role} \| {role} got SIGTERM$", stream="out", timeout=1)
        assert not any(line.startswith(("worker |", "api |")) for line in run.lines("err") if "Traceback" in line)


def test_child_output_is_scrubbed_of_the_secrets_spiffctl_knows(tmp_path):
    secret_file = tmp_path / "session_key"
    secret_file.write_text("file-secret-session-key-9\n")
    password = "Tr0ub4dor#horse"
    env = base_env(tmp_path, **CELERY)
    env.pop("FLASK_SESSION_SECRET_KEY", None)
    env.update(
        FLASK_SESSION_SECRET_KEY_FILE=str(secret_file),
        SPIFFWORKFLOW_BACKEND_DATABASE_URI=f"postgresql://spiff:{password}@127.0.0.1:5432/spiff",
        SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL="redis://:brokerpw-7731@127.0.0.1:6379/0",
        STANDIN_SHOW_ENV="SPIFFWORKFLOW_BACKEND_DATABASE_URI,FLASK_SESSION_SECRET_KEY,SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL",
        STANDIN_PRINT=f"connecting with {password} and brokerpw-7731",
    )
    with running(tmp_path, env, "--no-wait") as run:
        for role in ROLES3:
            run.wait_for(rf"^{role} \| {role} env FLASK_SESSION_SECRET_KEY=\*\*\*$")
        run.wait_for(
            r"^api \| api env SPIFFWORKFLOW_BACKEND_DATABASE_URI=postgresql://spiff:\*\*\*@127.0.0.1:5432/spiff$"
        )
        run.wait_for(r"^worker \| connecting with \*\*\* and \*\*\*$", stream="err")
        run.terminate()
        assert run.wait(15) == 0
    everything = "\n".join(run.lines("out") + run.lines("err"))
    for secret in (password, "brokerpw-7731", "file-secret-session-key-9"):
        assert secret not in everything


def test_no_worker_when_celery_is_off_and_the_lease_lives_in_sqlite(tmp_path):
    env = base_env(tmp_path)
    with running(tmp_path, env, "--no-wait") as run:
        run.wait_for(r"^api \| api ready")
        run.wait_for(r"^background \| background ready")
        status = subprocess.run(spiffctl("status"), env=env, capture_output=True, text=True, timeout=10)
        assert [line.split()[0] for line in status.stdout.splitlines()] == ["api", "background"]
        run.terminate()
        assert run.wait(15) == 0
    assert not any(line.startswith("worker") for line in run.lines())
    assert not any("without a lease" in line for line in run.lines())
    assert any("the lease lives in SQLite sqlite:///" in line for line in run.lines())
    assert (
        "SPIFFCTL_LOCK"
        not in (tmp_path / "run" / "supervisord.conf")
        .read_text()
        .split("[program:api]")[1]
        .split("[program:background]")[0]
    )


def test_a_role_that_exits_stops_everything_and_names_itself(tmp_path):
    env = base_env(
        tmp_path,
        **CELERY,
        STANDIN_BACKGROUND_EXIT_AFTER="1.5",
        STANDIN_BACKGROUND_EXIT_CODE="3",
        STANDIN_API_SPAWN_CHILD="true",
    )
    with running(tmp_path, env, "--no-wait") as run:
        run.wait_for(r"^background \| background exiting with 3$", timeout=20)
        exited = time.monotonic()
        assert run.wait(10) == 3
        assert time.monotonic() - exited < 5 + 1
        line = run.wait_for(r"^spiffctl: background exited", stream="err", timeout=1)
        assert "code 3" in line and "stopping every role" in line
        wait_gone([pid for _, _, pid in records(tmp_path)], 1.0)
        assert sum(line.startswith("spiffctl: background exited") for line in run.lines("err")) == 1


def test_fail_fast_within_5_s_even_when_the_others_are_slow_to_stop(tmp_path):
    env = base_env(
        tmp_path, STANDIN_API_EXIT_AFTER="1", STANDIN_API_EXIT_CODE="2", STANDIN_BACKGROUND_IGNORE_TERM="true"
    )
    with running(tmp_path, env, "--no-wait") as run:
        run.wait_for(r"^api \| api exiting with 2$", timeout=20)
        exited = time.monotonic()
        assert run.wait(10) == 2
        assert time.monotonic() - exited < 5 + 0.5
        wait_gone([pid for _, _, pid in records(tmp_path)], 1.0)


def test_a_role_that_exits_zero_still_fails_the_run(tmp_path):
    env = base_env(tmp_path, STANDIN_API_EXIT_AFTER="0.5", STANDIN_API_EXIT_CODE="0")
    with running(tmp_path, env, "--no-wait") as run:
        assert run.wait(20) == 1
        run.wait_for(r"^spiffctl: api exited with code 0; stopping every role$", stream="err", timeout=1)


def test_a_role_killed_by_a_signal_reports_128_plus_n(tmp_path):
    env = base_env(tmp_path)
    with running(tmp_path, env, "--no-wait") as run:
        line = run.wait_for(r"^api \| api ready pid=\d+$")
        os.kill(int(line.rsplit("=", 1)[1]), 9)
        assert run.wait(10) == 137
        run.wait_for(
            r"^spiffctl: api killed by SIGKILL \(exit code 137\); stopping every role$", stream="err", timeout=1
        )


@pytest.mark.parametrize("restarts", [0, 2])
def test_restart_policy(tmp_path, restarts):
    env = base_env(
        tmp_path,
        **CELERY,
        SPIFFCTL_RESTARTS=str(restarts),
        STANDIN_WORKER_EXIT_AFTER="0.2",
        STANDIN_WORKER_EXIT_CODE="4",
    )
    with running(tmp_path, env, "--no-wait") as run:
        assert run.wait(30) == 4
    starts = [r for r in records(tmp_path) if r[1] == "start"]
    assert sum(r[0] == "worker" for r in starts) == restarts + 1
    assert sum(r[0] == "api" for r in starts) == 1
    restarted = [line for line in run.lines("err") if "restarting it" in line]
    assert len(restarted) == restarts
    final = run.wait_for(r"^spiffctl: worker exited with code 4.*stopping every role$", stream="err", timeout=1)
    assert ("after 2 restarts" in final) == (restarts == 2)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SPIFFCTL_RESTARTS", "-1"),
        ("SPIFFCTL_RESTARTS", "two"),
        ("SPIFFCTL_STOP_GRACE", "0"),
        ("SPIFFCTL_STOP_GRACE", "1.5"),
        ("SPIFFCTL_STOP_GRACE", "ten"),
    ],
)
def test_bad_restarts_or_grace_is_a_config_error(tmp_path, name, value):
    result = run_once(base_env(tmp_path, **{name: value}), "--no-wait")
    assert result.returncode == 78
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"spiffctl: {name}: "), result.stderr
    assert records(tmp_path) == []


def test_config_error_of_any_role_is_78(tmp_path):
    env = base_env(tmp_path, SPIFFWORKFLOW_BACKEND_CELERY_ENABLED="true", SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL="x")
    del env["FLASK_SESSION_SECRET_KEY"]
    result = run_once(env, "--no-wait")
    assert result.returncode == 78
    assert "FLASK_SESSION_SECRET_KEY" in result.stderr and "CELERY_BROKER_URL" in result.stderr
    assert not (tmp_path / "run" / "supervisord.conf").exists()


def test_unusable_lock_url_is_refused(tmp_path):
    result = run_once(base_env(tmp_path, SPIFFCTL_LOCK_URL="ftp://cache/0"), "--no-wait")
    assert result.returncode == 78
    assert "SPIFFCTL_LOCK_URL" in result.stderr and "neither a Redis nor a database URL" in result.stderr


def test_missing_script_is_127(tmp_path):
    backend = tmp_path / "backend"
    shutil.copytree(BACKEND, backend, symlinks=False)
    (backend / "bin" / "start_celery_worker").unlink()
    result = run_once(base_env(tmp_path, **CELERY, SPIFFCTL_BACKEND_DIR=str(backend)), "--no-wait")
    assert result.returncode == 127
    assert "worker: bin script" in result.stderr


def test_generated_config_has_no_secret_and_private_permissions(tmp_path):
    secrets = ["flask-key-Zq9w8e7r6t", "db-pass-Xy7u6i5o", "redis-pass-Lk4j3h2g"]
    env = base_env(
        tmp_path,
        **CELERY,
        FLASK_SESSION_SECRET_KEY=secrets[0],
        SPIFFWORKFLOW_BACKEND_DATABASE_URI=f"postgresql://spiff:{secrets[1]}@127.0.0.1:5432/spiff",
        SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL=f"redis://:{secrets[2]}@127.0.0.1:6379/0",
        STANDIN_SHOW_ENV="FLASK_SESSION_SECRET_KEY",
        STANDIN_API_SHOW_UMASK="true",
    )
    run_dir = tmp_path / "run"
    with running(tmp_path, env, "--no-wait") as run:
        # supervisord runs with umask 077 for its own files; the roles keep the operator's.
        run.wait_for(rf"^api \| api umask {current_umask():03o}$", stream="out")
        # The roles do get the secret (they inherit supervisord's environment), print it scrubbed ...
        run.wait_for(r"^worker \| worker env FLASK_SESSION_SECRET_KEY=\*\*\*$", stream="out")
        [worker] = [r for r in read_records(tmp_path / "record") if r["role"] == "worker" and r["event"] == "ready"]
        assert worker["env"]["FLASK_SESSION_SECRET_KEY"] == secrets[0]
        conf = run_dir / "supervisord.conf"
        text = conf.read_text()
        # ... but it is never written to disk.
        for secret in secrets:
            assert secret not in text
        assert "environment=" in text and "FLASK" not in text
        assert stat.S_IMODE(conf.stat().st_mode) == 0o600
        assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE((run_dir / "supervisor.sock").stat().st_mode) == 0o700
        for path in run_dir.rglob("*"):
            if path.is_file() and not path.is_socket():
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
                content = path.read_text(errors="replace")
                assert not any(s in content for s in secrets), path
        run.terminate()
        assert run.wait(15) == 0
    spiffctl_lines = [line for line in run.lines("err") if line.startswith("spiffctl:")]
    assert not any(s in line for line in spiffctl_lines for s in secrets)


def test_each_role_gets_its_own_prometheus_dir(tmp_path):
    prom = tmp_path / "prom"
    env = base_env(tmp_path, **CELERY, PROMETHEUS_MULTIPROC_DIR=str(prom), STANDIN_SHOW_ENV="PROMETHEUS_MULTIPROC_DIR")
    with running(tmp_path, env, "--no-wait") as run:
        for role in ROLES3:
            run.wait_for(rf"^{role} \| {role} env PROMETHEUS_MULTIPROC_DIR={prom / role}$", stream="out")
            assert (prom / role).is_dir()


def test_stop_kills_a_role_that_ignores_sigterm_after_the_grace(tmp_path):
    env = base_env(tmp_path, SPIFFCTL_STOP_GRACE="1", STANDIN_API_IGNORE_TERM="true")
    with running(tmp_path, env, "--no-wait") as run:
        run.wait_for(r"^api \| api ready")
        run.wait_for(r"^background \| background ready")
        started = time.monotonic()
        run.terminate()
        assert run.wait(10) == 137
        assert time.monotonic() - started < 1 + 2
        run.wait_for(r"^spiffctl: api did not stop within its grace period and was killed", stream="err", timeout=1)
        wait_gone([pid for _, _, pid in records(tmp_path)], 1.0)


def test_sigint_stops_too(tmp_path):
    with running(tmp_path, base_env(tmp_path), "--no-wait") as run:
        run.wait_for(r"^background \| background ready")
        run.wait_for(r"^api \| api ready")
        run.proc.send_signal(2)
        assert run.wait(15) == 0


def test_dependencies_are_checked_once_before_anything_starts(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    uri = f"postgresql://spiff:hidden-pw-123@127.0.0.1:{port}/spiff"
    result = run_once(base_env(tmp_path, SPIFFWORKFLOW_BACKEND_DATABASE_URI=uri), "--wait-timeout", "0")
    assert result.returncode == 69
    assert "database" in result.stderr and "hidden-pw-123" not in result.stderr
    assert records(tmp_path) == []
    assert not (tmp_path / "run" / "supervisord.conf").exists()


def test_waits_for_the_shared_postgres_then_starts(tmp_path, pg_database):
    env = base_env(tmp_path, SPIFFWORKFLOW_BACKEND_DATABASE_URI=at_head(pg_database))
    with running(tmp_path, env, "--wait-timeout", "10") as run:
        run.wait_for(r"^api \| api ready")
        run.wait_for(r"^background \| background ready")


def test_the_api_upgrades_and_answers_before_background_and_worker_start(tmp_path, shared_redis):
    """On an empty database: one upgrade by the API's spiffctl, then the API boots alone; the other
    two roles wait (WAITING in status) until it answers, so they do not compete with its start."""
    env = base_env(
        tmp_path,
        **uv_env(),
        SPIFFCTL_LOCK="off",
        SPIFFWORKFLOW_BACKEND_CELERY_ENABLED="true",
        SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL=shared_redis,
        SPIFFWORKFLOW_BACKEND_UPGRADE_DB="true",
        STANDIN_MIGRATIONS="true",
        STANDIN_UPGRADE_SECONDS="1",
        STANDIN_API_STARTUP_DELAY="3",
    )
    with running(tmp_path, env, "--wait-timeout", "30") as run:
        run.wait_for(r"^api \| spiffctl: holding the migration lock", stream="err", timeout=60)

        def waiting_roles() -> set[str]:
            out = subprocess.run(spiffctl("status"), env=env, capture_output=True, text=True, timeout=30).stdout
            return {line.split()[0] for line in out.splitlines() if "WAITING" in line}

        wait_until(lambda: waiting_roles() == {"background", "worker"}, 30)
        for role in ROLES3:
            run.wait_for(rf"^{role} \| {role} ready pid=\d+$", stream="out", timeout=60)
    found = read_records(tmp_path / "record")
    (api_ready,) = [r for r in found if r["role"] == "api" and r["event"] == "ready"]
    (upgrade_end,) = [r for r in found if r["role"] == "uv-upgrade" and r["event"] == "exit"]
    assert upgrade_end["exit_code"] == 0 and upgrade_end["monotonic"] < api_ready["monotonic"]
    for role in ("background", "worker"):
        (start,) = [r for r in found if r["role"] == role and r["event"] == "start"]
        assert start["monotonic"] > api_ready["monotonic"]
        assert start["env"]["SPIFFWORKFLOW_BACKEND_UPGRADE_DB"] == "true"  # theirs is never acted on


def test_a_second_all_in_one_on_the_same_run_dir_is_refused(tmp_path):
    env = base_env(tmp_path)
    with running(tmp_path, env, "--no-wait") as run:
        run.wait_for(r"^api \| api ready")
        second = run_once(env, "--no-wait")
        assert second.returncode == 78
        assert "already runs" in second.stderr
        assert run.proc.poll() is None


def test_render_without_running(tmp_path):
    """The template renders each role once, with percent signs escaped for supervisord."""
    from spiffctl.allinone.supervisor import make_plan, render
    from spiffctl.config.settings import load
    from spiffctl.roles import roles_for

    env = base_env(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "100%"))
    settings = load(env, backend_dir=Path(env["SPIFFCTL_BACKEND_DIR"]))
    roles = roles_for("all", celery_enabled=False)
    plan = make_plan(settings, roles, env, say=lambda _: None)
    text = render(plan)
    assert text.count("[program:") == 2 and "programs=api,background" in text
    assert "100%%/api" in text
    assert "${" not in text


def test_the_wheel_ships_the_template(tmp_path):
    """A non-editable install must find conf/supervisord.conf.tmpl inside the package."""
    import zipfile

    root = Path(__file__).resolve().parent.parent
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(root)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    if built.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {built.stderr.strip().splitlines()[-1:]}")
    (wheel,) = tmp_path.glob("spiffctl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "spiffctl/conf/supervisord.conf.tmpl" in names
    assert (root / "conf" / "supervisord.conf.tmpl").read_text() == (
        root / "spiffctl" / "conf" / "supervisord.conf.tmpl"
    ).read_text()
