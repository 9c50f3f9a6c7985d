"""The run folder cannot be turned against the host (issue 16 item 1, issue 18 item 9).

An unsafe ``SPIFFCTL_RUN_DIR`` (a symlink, a file, another user's folder, a folder others may
write, ``/``, ``/tmp``, a relative path) is refused by every command with the same one line and
78 (doctor: a failing configuration row), and nothing is chmod'ed or written. Inside a good folder
no file is ever written through a planted link.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from spiffctl import state
from tests.support.allinone import base_env, records, running, spiffctl
from tests.support.poll import wait_until
from tests.support.procs import session_members

OTHER_UID = 54321  # no such user: "another local user" for ownership checks
LINE_END = (
    "; point SPIFFCTL_RUN_DIR at a folder of your own that only you can write (created 0700 when missing), or unset it"
)


def folder(tmp_path: Path, kind: str) -> tuple[str, str]:
    """An unsafe SPIFFCTL_RUN_DIR of ``kind`` and the reason spiffctl must give."""
    if kind == "root":
        return "/", "is the root folder"
    if kind == "tmp":
        return "/tmp", "is writable by group and others (mode 1777)"
    if kind == "relative":
        return "../..", "is not an absolute path"
    if kind == "dotdot":
        return f"{tmp_path}/a/../..", "contains '..'"
    path = tmp_path / kind
    if kind == "file":
        path.write_text("not a folder")
        return str(path), "is not a folder"
    if kind == "symlink":
        real = tmp_path / "real"
        real.mkdir(mode=0o700)
        path.symlink_to(real)
        return str(path), "is a symbolic link"
    path.mkdir()
    if kind == "world":
        os.chmod(path, 0o1777)
        return str(path), "is writable by group and others (mode 1777)"
    if kind == "group":
        os.chmod(path, 0o770)
        return str(path), "is writable by group (mode 0770)"
    assert kind == "other_owner"
    os.chmod(path, 0o755)
    os.chown(path, OTHER_UID, OTHER_UID)
    return str(path), f"is owned by uid {OTHER_UID}, not by uid {os.geteuid()} that spiffctl runs as"


KINDS = ["root", "tmp", "relative", "dotdot", "file", "symlink", "world", "group", "other_owner"]
COMMANDS = [
    ("run", "--role", "api", "--no-wait"),
    ("run", "--role", "background", "--no-wait"),
    ("run", "--role", "worker", "--no-wait"),
    ("run", "--role", "all", "--no-wait"),
    ("status",),
    ("healthcheck",),
    ("healthcheck", "--role", "api"),
]


def modes(paths: list[Path]) -> dict[Path, tuple[int, int]]:
    out = {}
    for p in paths:
        st = os.lstat(p)
        out[p] = (st.st_mode, st.st_uid)
    return out


def finished(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Like ``subprocess.run``, but a command that wrongly starts roles leaves none behind."""
    proc = subprocess.Popen(
        args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        for pid in [proc.pid, *session_members(proc.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def spiffctl_in(tmp_path: Path, run_dir: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = base_env(tmp_path, SPIFFCTL_RUN_DIR=run_dir, SPIFFWORKFLOW_BACKEND_CELERY_ENABLED="true")
    env["SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL"] = "redis://127.0.0.1:6379/0"
    return finished(spiffctl(*args), env, tmp_path)


@pytest.mark.parametrize("kind", KINDS)
def test_an_unsafe_run_folder_is_refused_with_78_and_one_line_and_nothing_changes(tmp_path, kind):
    run_dir, why = folder(tmp_path, kind)
    watched = [Path("/"), Path("/tmp"), tmp_path, *tmp_path.iterdir()]
    before = modes(watched)
    contents = sorted(os.listdir(run_dir)) if os.path.isdir(run_dir) and kind not in ("root", "tmp") else None
    shown = repr(run_dir)
    r = spiffctl_in(tmp_path, run_dir, "run", "--role", "api", "--no-wait")
    assert (r.returncode, r.stdout) == (78, ""), r
    assert r.stderr.splitlines() == [f"spiffctl: SPIFFCTL_RUN_DIR: {shown} {why}{LINE_END}"]
    assert modes(watched) == before  # nothing chmod'ed (or chown'ed), the folder itself included
    if contents is not None:
        assert sorted(os.listdir(run_dir)) == contents  # nothing written
    assert not records(tmp_path)  # no role started


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("kind", ["tmp", "symlink", "other_owner"])
def test_every_command_refuses_it_the_same_way(tmp_path, kind, args):
    run_dir, why = folder(tmp_path, kind)
    r = spiffctl_in(tmp_path, run_dir, *args)
    assert (r.returncode, r.stdout) == (78, ""), r
    assert r.stderr.splitlines() == [f"spiffctl: SPIFFCTL_RUN_DIR: {run_dir!r} {why}{LINE_END}"]


@pytest.mark.parametrize("kind", ["tmp", "symlink", "other_owner"])
def test_doctor_fails_its_configuration_check_with_that_line(tmp_path, kind):
    run_dir, why = folder(tmp_path, kind)
    r = spiffctl_in(tmp_path, run_dir, "doctor", "--json", "--timeout", "2")
    assert r.returncode == 1, r

    (check,) = [c for c in json.loads(r.stdout)["checks"] if c["id"] == "configuration"]
    assert check["status"] == "fail"
    (problem,) = [p for p in check["problems"] if p["variable"] == "SPIFFCTL_RUN_DIR"]
    assert problem["status"] == "fail"
    assert f"{problem['variable']}: {problem['message']}; {problem['fix']}" == (
        f"SPIFFCTL_RUN_DIR: {run_dir!r} {why}{LINE_END}"
    )


def test_a_missing_folder_is_created_0700_whatever_the_umask(tmp_path):
    run_dir = tmp_path / "deep" / "run"
    old = os.umask(0o277)
    try:
        state.run_dir({"SPIFFCTL_RUN_DIR": str(run_dir)})
    finally:
        os.umask(old)
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700


def test_an_existing_private_folder_keeps_its_mode(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o500)
    os.chmod(run_dir, 0o500)
    state.run_dir({"SPIFFCTL_RUN_DIR": str(run_dir)})
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o500


def test_the_default_prefers_the_users_runtime_folder_then_run_for_root(tmp_path):
    xdg = tmp_path / "xdg"
    xdg.mkdir(mode=0o700)
    assert state.default_run_dir({"XDG_RUNTIME_DIR": str(xdg)}) == xdg / "spiffctl"
    os.chmod(xdg, 0o777)  # not valid: not used
    assert state.default_run_dir({"XDG_RUNTIME_DIR": str(xdg)}) == Path("/run/spiffctl")
    assert state.default_run_dir({"XDG_RUNTIME_DIR": "relative"}) == Path("/run/spiffctl")


def test_an_unsafe_default_folder_is_refused_too(tmp_path):
    xdg = tmp_path / "xdg"
    xdg.mkdir(mode=0o700)
    (xdg / "spiffctl").symlink_to(tmp_path)
    with pytest.raises(state.ConfigError) as e:
        state.run_dir({"XDG_RUNTIME_DIR": str(xdg)}, create=False)
    default = xdg / "spiffctl"
    assert e.value.message.startswith(f"SPIFFCTL_RUN_DIR: the default run folder {default} is a symbolic link;")


# --- the attacks of issue 16, each refused now -------------------------------------------------


def test_a_symlink_at_the_temporary_name_is_never_written_through(tmp_path):
    """Attack (b): main wrote ``.<name>.<pid>.tmp`` with O_CREAT|O_TRUNC and truncated the victim."""
    run_dir = state.run_dir({"SPIFFCTL_RUN_DIR": str(tmp_path / "run")})
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (run_dir / f".role.{os.getpid()}.tmp").symlink_to(victim)
    (run_dir / "role").symlink_to(victim)  # and at the final name: replaced, not followed
    state.write_text(run_dir / "role", "api\n")
    assert victim.read_text() == "precious"
    assert not (run_dir / "role").is_symlink() and (run_dir / "role").read_text() == "api\n"
    assert stat.S_IMODE((run_dir / "role").stat().st_mode) == 0o600


def test_a_planted_link_is_not_read_through(tmp_path):
    run_dir = state.run_dir({"SPIFFCTL_RUN_DIR": str(tmp_path / "run")})
    secret = tmp_path / "elsewhere.json"
    secret.write_text('{"pid": 1}')
    (run_dir / "background.json").symlink_to(secret)
    assert state.read_json(run_dir / "background.json") is None


def test_a_planted_supervisord_pid_link_is_replaced_not_followed(tmp_path):
    """Attack (a): supervisord's own pidfile write followed a link planted as supervisord.pid."""
    env = base_env(tmp_path)
    run_dir = Path(env["SPIFFCTL_RUN_DIR"])
    state.run_dir(env)
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (run_dir / "supervisord.pid").symlink_to(victim)
    with running(tmp_path, env, "--no-wait") as run:
        run.wait_for(r"^api \| api ready")
        pidfile = run_dir / "supervisord.pid"
        wait_until(lambda: not pidfile.is_symlink())
        assert pidfile.read_text() == f"{run.pid}\n"
    assert victim.read_text() == "precious"


def test_another_users_run_folder_is_refused_before_anything_is_written(tmp_path):
    """Attack (c): a folder pre-created by another user (who could swap supervisord.conf) is refused."""
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o777)
    os.chmod(run_dir, 0o777)
    os.chown(run_dir, OTHER_UID, OTHER_UID)
    env = base_env(tmp_path)
    r = finished(spiffctl("run", "--role", "all", "--no-wait"), env, tmp_path)
    assert r.returncode == 78, r
    assert "is owned by uid" in r.stderr
    assert os.listdir(run_dir) == []
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o777


def test_pid1_refuses_a_configuration_someone_else_can_write(tmp_path):
    """Attack (c) at the last step: supervisord must not run commands from a file another user controls."""
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    conf = run_dir / "supervisord.conf"
    marker = tmp_path / "ran"
    conf.write_text(f"[supervisord]\nnodaemon=true\n[program:x]\ncommand=touch {marker}\n")
    os.chown(conf, OTHER_UID, OTHER_UID)
    r = finished([sys.executable, "-m", "spiffctl.allinone.pid1", str(conf)], dict(os.environ), tmp_path)
    assert r.returncode == 78, r
    assert r.stderr.splitlines() == [
        f"spiffctl: {conf} is not a regular file of ours that only we can write; refusing to start supervisord with it"
    ]
    assert not marker.exists()
