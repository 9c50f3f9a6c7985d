"""No password is ever printed: passwords from every printable character, raw and percent-encoded,
in every URL variable, through run (every role), doctor (table and JSON), healthcheck, status, the
generated supervisord configuration, the run dir's state files and every error path on the way.

The commands run in-process (``spiffctl.cli.main``) so that hypothesis can try many passwords;
every dependency is a closed port on 127.0.0.1 (or the shared MariaDB refusing a wrong password),
so each command takes its error path and none can exec a script. A password is built from
distinctive tokens joined by random printable separators: any fragment a parser could split off
still carries a token, and the tokens never occur in anything else these commands print.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from spiffctl.allinone import supervisor
from spiffctl.cli import main
from spiffctl.config.settings import load
from spiffctl.lease import guard, resident
from spiffctl.roles import roles_for
from spiffctl.util import bounded, procfs
from spiffctl.util.errors import SpiffctlError
from tests.support.cli import backend_root, doctor_document
from tests.support.ports import ClosedPort
from tests.test_urls import passwords


class Exec(BaseException):
    """A command reached exec: it must not happen here (every dependency is down)."""


@pytest.fixture(scope="module")
def closed() -> Iterator[int]:
    with ClosedPort() as port:
        yield port.port


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return backend_root(tmp_path_factory.mktemp("backend"))


# variable under test -> the environment that puts the (written) password into it
Placement = Callable[[str, int, Path], dict[str, str]]
PLACEMENTS: dict[str, Placement] = {
    "database uri": lambda pw, port, tmp: {
        "SPIFFWORKFLOW_BACKEND_DATABASE_URI": f"postgresql://spiff:{pw}@127.0.0.1:{port}/spiff"
    },
    "database uri (mysql)": lambda pw, port, tmp: {
        "SPIFFWORKFLOW_BACKEND_DATABASE_URI": f"mysql+mysqldb://spiff:{pw}@127.0.0.1:{port}/spiff"
    },
    "database uri file": lambda pw, port, tmp: _file(
        tmp, "SPIFFWORKFLOW_BACKEND_DATABASE_URI", f"postgresql://spiff:{pw}@127.0.0.1:{port}/spiff"
    ),
    # Derived by the backend as mysql+mysqldb://root:<password>@127.0.0.1/..., the shared MariaDB
    # answers and refuses the password.
    "database password": lambda pw, port, tmp: {
        "SPIFFWORKFLOW_BACKEND_DATABASE_TYPE": "mysql",
        "SPIFFWORKFLOW_BACKEND_DATABASE_PASSWORD": pw,
    },
    "broker (redis)": lambda pw, port, tmp: {
        "SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL": f"redis://:{pw}@127.0.0.1:{port}/0"
    },
    "broker (amqp)": lambda pw, port, tmp: {
        "SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL": f"amqp://guest:{pw}@127.0.0.1:{port}//"
    },
    "result backend (redis)": lambda pw, port, tmp: {
        "SPIFFWORKFLOW_BACKEND_CELERY_RESULT_BACKEND": f"redis://:{pw}@127.0.0.1:{port}/1"
    },
    "result backend (database)": lambda pw, port, tmp: {
        "SPIFFWORKFLOW_BACKEND_CELERY_RESULT_BACKEND": f"db+postgresql://celery:{pw}@127.0.0.1:{port}/results"
    },
    "lock url": lambda pw, port, tmp: {"SPIFFCTL_LOCK_URL": f"redis://:{pw}@127.0.0.1:{port}/0"},
    "connector proxy": lambda pw, port, tmp: {
        "SPIFFWORKFLOW_BACKEND_CONNECTOR_PROXY_URL": f"http://proxy:{pw}@127.0.0.1:{port}"
    },
}


def _file(tmp: Path, name: str, value: str) -> dict[str, str]:
    path = tmp / "secret"
    path.write_text(value + "\n", encoding="utf-8")
    return {f"{name}_FILE": str(path)}


COMMANDS: tuple[tuple[str, ...], ...] = (
    *(("run", "--role", role, "--wait-timeout", "0") for role in ("api", "background", "worker", "all")),
    ("run", "--role", "background", "--no-wait"),
    ("doctor", "--json", "--timeout", "2"),
    ("doctor", "--timeout", "2"),
    *(("healthcheck", "--role", role) for role in ("api", "background", "worker", "all")),
    ("status",),
)


@contextlib.contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def cli(*args: str) -> tuple[object, str]:
    """``spiffctl ARGS`` in this process: (exit code, everything it printed)."""
    out, err = io.StringIO(), io.StringIO()

    def no_exec(_path: object, argv: list[str], *_: object) -> None:
        if argv[1:3] == ["-m", resident.__name__]:
            resident.main(argv[3:])  # the Background's lean runner, exec'd after the checks: in-process too
        raise Exec(args)

    def leave(code: int) -> None:  # never os._exit the test run
        raise SystemExit(code)

    def standby_once(*_: object) -> None:  # the standby has said what it says; end it
        raise SystemExit(0)

    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        pytest.MonkeyPatch.context() as mp,
    ):
        mp.setattr(os, "execve", no_exec)
        mp.setattr(os, "execv", no_exec)
        mp.setattr(bounded, "leave", leave)
        # Bounds are measured from exec; this process was exec'd long before the command.
        mp.setattr(procfs, "exec_time", time.monotonic)
        mp.setattr(guard.Guard, "_wait", standby_once)
        try:
            main(list(args))
        except SystemExit as e:
            code = e.code
    return code, out.getvalue() + err.getvalue()


def everything_printed(env: dict[str, str], backend: Path, run_dir: Path) -> dict[str, str]:
    """What each command printed, the supervisord configuration and the run dir's files."""
    printed: dict[str, str] = {}
    with environment(env):
        for args in COMMANDS:
            code, text = cli(*args)
            assert code != 70, (args, code, text)  # never a crash
            if args[:2] == ("doctor", "--json"):
                doctor_document(text)  # one document, to the contract, whatever the secret
            printed[" ".join(args)] = text
        settings_ = load(env, backend_dir=backend)
        if not settings_.errors:
            said: list[str] = []
            try:
                plan = supervisor.make_plan(settings_, roles_for("all", celery_enabled=True), env, say=said.append)
                said.append(supervisor.render(plan))
            except SpiffctlError as e:
                said.append(e.message)
            printed["supervisord.conf"] = "\n".join(said)
    for path in run_dir.rglob("*"):
        if path.is_file() and not path.is_socket():
            printed[str(path)] = path.read_text(encoding="utf-8", errors="replace")
    return printed


@pytest.mark.parametrize("placement", list(PLACEMENTS))
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=passwords(), encoded=st.booleans())
@example(secret=("Tr0ub4dor#horsezjqx", ["zjqx"]), encoded=False)  # the report that found the leak
@example(secret=("qxzj/kvqx?zzjj@", ["qxzj", "kvqx", "zzjj"]), encoded=False)
def test_no_password_is_ever_printed(placement, secret, encoded, closed, backend, tmp_path):
    password, tokens = secret
    written = quote(password, safe="") if encoded else password
    run_dir = tmp_path / f"run-{os.urandom(4).hex()}"
    env = {
        "PATH": os.environ["PATH"],
        "SPIFFCTL_BACKEND_DIR": str(backend),
        "SPIFFCTL_RUN_DIR": str(run_dir),
        "FLASK_SESSION_SECRET_KEY": "flask-session-key-for-tests",
        "SPIFFWORKFLOW_BACKEND_BPMN_SPEC_ABSOLUTE_DIR": str(backend / "process_models"),
        "SPIFFWORKFLOW_BACKEND_DATABASE_URI": f"postgresql://spiff@127.0.0.1:{closed}/spiff",
        "SPIFFWORKFLOW_BACKEND_CELERY_ENABLED": "true",
        "SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL": f"redis://127.0.0.1:{closed}/0",
        "SPIFFWORKFLOW_BACKEND_PORT": str(closed),
        "SPIFFWORKFLOW_BACKEND_CONNECTOR_PROXY_URL": f"http://127.0.0.1:{closed}",
    }
    placed = PLACEMENTS[placement](written if placement != "database password" else password, closed, tmp_path)
    if "SPIFFWORKFLOW_BACKEND_DATABASE_URI_FILE" in placed or "SPIFFWORKFLOW_BACKEND_DATABASE_TYPE" in placed:
        del env["SPIFFWORKFLOW_BACKEND_DATABASE_URI"]
    env.update(placed)
    # A worker "running" in this container, so healthcheck goes on to probe the broker.
    worker_dir = run_dir
    worker_dir.mkdir(mode=0o700)
    record = {"pid": os.getpid(), "start": procfs.start_time(os.getpid())}
    (worker_dir / "worker.process.json").write_text(json.dumps(record), encoding="utf-8")

    for where, text in everything_printed(env, backend, run_dir).items():
        leaked = [t for t in tokens if t in text]
        assert not leaked, f"{placement}: {where} printed part of the password {password!r}:\n{text}"
