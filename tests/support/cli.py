"""Running the CLI for real (``Ran``: exit code, output, the doctor JSON checked against its
schema), a stand-in backend root, a tiny HTTP server."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema

from tests.support.poll import wait_until
from tests.support.ports import Blackhole

# Every doctor document a test reads is checked against the published contract.
DOCTOR_SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "doctor.schema.json").read_text())

SCRIPTS = ("boot_server_in_docker", "start_blocking_apscheduler", "start_celery_worker")
# A stand-in history: base -> head. A database "behind by one" sits at BASE.
BASE, HEAD = "1a2b3c4d5e6f", "9f8e7d6c5b4a"


def doctor_document(out: str) -> dict[str, Any]:
    """doctor's JSON output, parsed and validated against docs/doctor.schema.json."""
    doc: dict[str, Any] = json.loads(out)
    jsonschema.Draft202012Validator(DOCTOR_SCHEMA).validate(doc)
    return doc


@dataclass
class Ran:
    code: int
    out: str
    err: str
    elapsed: float

    @property
    def doc(self) -> dict[str, Any]:
        """doctor's JSON document, valid against docs/doctor.schema.json."""
        return doctor_document(self.out)

    def problem(self, variable: str) -> dict[str, Any]:
        """The configuration check's one finding about ``variable``."""
        rows = [p for p in self.check("configuration")["problems"] if p["variable"] == variable]
        assert len(rows) == 1, (variable, self.out)
        return rows[0]

    def check(self, name: str) -> dict[str, Any]:
        rows = [c for c in self.doc["checks"] if c["name"] == name]
        assert len(rows) == 1, (name, self.out)
        return rows[0]


def spiffctl(*args: str, env: Mapping[str, str], timeout: float = 60) -> Ran:
    """``python -m spiffctl ARGS`` with exactly ``env`` (plus PATH), as an operator would run it."""
    full = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", **env}
    t0 = time.monotonic()
    p = subprocess.run(
        [sys.executable, "-m", "spiffctl", *args], env=full, capture_output=True, text=True, timeout=timeout
    )
    return Ran(p.returncode, p.stdout, p.stderr, time.monotonic() - t0)


def backend_root(root: Path, *, script: str = "#!/bin/sh\nexit 0\n", standins: bool = False) -> Path:
    """A backend root with the three bin scripts, a two-step migration history and a models folder.

    With ``standins`` the scripts are the infra branch's stand-ins (tests/standins), which behave
    like the real ones (the API serves /v1.0/status); otherwise ``script`` is each script's text.
    """
    if standins:
        from tests.standins import copy_backend

        copy_backend(root, migrations=False)  # its own two-step history replaces the stand-ins'
    else:
        (root / "bin").mkdir(parents=True)
        for name in SCRIPTS:
            path = root / "bin" / name
            path.write_text(script)
            path.chmod(0o755)
    versions = root / "migrations" / "versions"
    versions.mkdir(parents=True)
    (versions / f"{BASE}_.py").write_text(f'"""base"""\nrevision = "{BASE}"\ndown_revision = None\n')
    (versions / f"{HEAD}_.py").write_text(
        f'"""head"""\nfrom alembic import op\n\nrevision: str = "{HEAD}"\ndown_revision = "{BASE}"\n'
    )
    (root / "models").mkdir()
    return root


def base_env(backend: Path, **extra: str) -> dict[str, str]:
    env = {
        "SPIFFCTL_BACKEND_DIR": str(backend),
        "FLASK_SESSION_SECRET_KEY": "a-long-random-session-key",
        "SPIFFWORKFLOW_BACKEND_BPMN_SPEC_ABSOLUTE_DIR": str(backend / "models"),
        "SPIFFWORKFLOW_BACKEND_DATABASE_URI": f"sqlite:///{backend / 'db.sqlite3'}",
    }
    env.update(extra)
    return env


def unresponsive_env(backend: Path, scheme: str, holes: Sequence[Blackhole]) -> dict[str, str]:
    """Every dependency doctor checks (database, broker, result backend, proxy) is a blackhole."""
    database, broker, results, proxy = holes
    return base_env(
        backend,
        SPIFFWORKFLOW_BACKEND_DATABASE_URI=database.url(scheme, "/db"),
        SPIFFWORKFLOW_BACKEND_CELERY_ENABLED="true",
        SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL=broker.url("amqp", "//"),
        SPIFFWORKFLOW_BACKEND_CELERY_RESULT_BACKEND=results.url("redis", "/0"),
        SPIFFWORKFLOW_BACKEND_CONNECTOR_PROXY_URL=proxy.url("http", ""),
    )


class HTTPStub:
    """Answers GET ``path`` with ``(status, body)`` from ``respond``; 404 elsewhere."""

    def __init__(self, respond: Callable[[str], tuple[int, bytes]]) -> None:
        outer = self
        self.hits: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits.append(self.path)
                status, body = respond(self.path)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> HTTPStub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def celery_worker(
    tmp_path: Path, run_dir: Path, broker: str, argv_log: Path | None = None, **extra: str
) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, str]]]:
    """`spiffctl run --role worker` whose stand-in script execs a real Celery worker on ``broker``
    (from the stand-in backend's venv, as the real script does); yields (process, env) once the
    worker answers the healthcheck. ``extra``: more variables for the worker and the healthcheck
    alike (one container's environment). Killed with its whole process group afterwards."""
    from tests.standins import give_venv

    backend = backend_root(tmp_path / "backend", standins=True)
    give_venv(backend, argv_log=argv_log)
    env = {
        "PATH": os.environ["PATH"],
        "SPIFFCTL_RUN_DIR": str(run_dir),
        "STANDIN_CELERY": "true",
        **base_env(
            backend,
            SPIFFWORKFLOW_BACKEND_CELERY_ENABLED="true",
            SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL=broker,
        ),
        **extra,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "spiffctl", "run", "--role", "worker", "--no-wait"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until(
            lambda: (r := spiffctl("healthcheck", env=env)).code == 0 and r, timeout=60, what="celery worker answers"
        )
        yield proc, env
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGCONT)  # a stopped process group dies on SIGKILL too, but thaw it first
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)
