"""Shared implementation of the stand-in backend scripts (stdlib only; see tests/standins/__init__.py).

Each ``bin/<script>`` imports :func:`main` with its role. Behaviour is driven by ``STANDIN_*``
environment variables, documented in ``tests/standins/__init__.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BACKEND_ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
_state: dict[str, Any] = {"starting": True, "role": ""}


def _opt(name: str, default: str = "") -> str:
    """``STANDIN_<ROLE>_<NAME>`` first, then ``STANDIN_<NAME>``: under ``run --role all`` the three
    roles share one environment, so a per-role name picks one of them."""
    role = _state["role"].split("-", 1)[0].upper()
    for var in (f"STANDIN_{role}_{name}", f"STANDIN_{name}"):
        if os.environ.get(var):
            return os.environ[var]
    return default


def _flag(name: str, default: str = "false") -> str:
    return _opt(name, default).strip().lower()


def _float(name: str, default: float | None) -> float | None:
    raw = _opt(name).strip()
    return float(raw) if raw else default


def record(role: str, event: str, **extra: Any) -> None:
    """Append one JSON line to $STANDIN_RECORD with a single O_APPEND write."""
    path = os.environ.get("STANDIN_RECORD")
    if not path:
        return
    entry = {
        "role": role,
        "event": event,
        "argv": sys.argv,
        "cwd": os.getcwd(),
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "pgid": os.getpgid(0),
        "sid": os.getsid(0),
        "monotonic": time.monotonic(),
        "time": time.time(),
        "env": dict(os.environ),
        **extra,
    }
    data = (json.dumps(entry, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def say(text: str, *, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def _exit(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _install_signals(role: str) -> None:
    ignore = _flag("IGNORE_TERM")

    def handler(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if signum == signal.SIGTERM and (ignore == "true" or (ignore == "startup" and _state["starting"])):
            record(role, "signal", signal=name, action="ignored")
            return
        code = 0 if signum == signal.SIGTERM else 128 + signum
        say(f"{role} got {name}")
        record(role, "stop", reason="signal", signal=name, exit_code=code)
        _exit(code)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, handler)


def _spawn_orphan(role: str, *, linger: bool = False) -> None:
    """Double fork: the grandchild is re-parented to the nearest subreaper / PID 1.

    ``linger``: the grandchild also leaves the process group (its own session) and lives until
    ``MAX_LIFETIME``, like a daemon that escaped its role: only a PID 1 that sweeps its
    descendants at the end gets rid of it."""
    seconds = (_float("MAX_LIFETIME", 300.0) if linger else _float("ORPHAN_SECONDS", 3.0)) or 0.0
    parent = os.getpid()
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    if os.fork():
        os._exit(0)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    if linger:
        os.setsid()
    deadline = time.monotonic() + 2
    while os.getppid() == parent and time.monotonic() < deadline:
        time.sleep(0.01)
    record(role + "-orphan", "start", linger=linger)
    time.sleep(seconds)
    record(role + "-orphan", "exit", reason="lifetime", exit_code=0)
    os._exit(0)


def _spawn_child(role: str) -> None:
    """A python grandchild in the same process group (like `uv run` -> python)."""
    subprocess.Popen([sys.executable, os.path.realpath(__file__), "child", role], close_fds=True)


def _child_main(role: str) -> None:
    me = role + "-child"
    _state["role"] = me

    def handler(signum: int, _frame: object) -> None:
        code = 0 if signum == signal.SIGTERM else 128 + signum
        record(me, "stop", reason="signal", signal=signal.Signals(signum).name, exit_code=code)
        _exit(code)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, handler)
    record(me, "start")
    time.sleep(_float("MAX_LIFETIME", 300.0) or 300.0)
    record(me, "exit", reason="max_lifetime", exit_code=0)
    _exit(0)


def _bash_like_error(script: str, message: str, code: int = 1) -> None:
    say(message, err=True)
    say(f"Exited with BAD EXIT CODE '{code}' in {script} script at line: 1.", err=True)


def _status_ok() -> bool:
    path = _opt("STATUS_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                return f.read().strip().lower() != "false"
        except FileNotFoundError:
            pass
    return _flag("STATUS_OK", "true") != "false"


def _serve_api(role: str) -> None:
    port = int(os.environ.get("SPIFFWORKFLOW_BACKEND_PORT") or 7000)
    prefix = (os.environ.get("SPIFFWORKFLOW_BACKEND_WSGI_PATH_PREFIX") or "").strip("/")
    status_path = (f"/{prefix}" if prefix else "") + "/v1.0/status"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] == status_path:
                ok = _status_ok()
                self._send(200 if ok else 500, {"ok": ok})
            else:
                self._send(404, {"error": "not found", "path": self.path})

        def _send(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            say(f"standin api access: {format % args}")

    bind = _opt("BIND", "0.0.0.0")
    try:
        server = ThreadingHTTPServer((bind, port), Handler)
    except OSError as exc:
        say(f"[ERROR] Connection in use: ('{bind}', {port}): {exc}", err=True)
        record(role, "error", reason="bind", error=str(exc), exit_code=1)
        _exit(1)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    now = time.strftime("%Y-%m-%d %H:%M:%S")
    say(f"BOOT SERVER IN DOCKER ({now}): Starting gunicorn server")
    say(f"[{now} +0000] [{os.getpid()}] [INFO] Listening at: http://{bind}:{port} ({os.getpid()})")
    record(role, "ready", port=port, status_path=status_path)


def _announce_ready(role: str) -> None:
    say(f"{role} ready pid={os.getpid()}")
    say(f"{role} on stderr", err=True)
    for name in filter(None, _opt("SHOW_ENV").split(",")):
        say(f"{role} env {name}={os.environ.get(name, '')}")
    if _flag("SHOW_UMASK") == "true":
        mask = os.umask(0)
        os.umask(mask)
        say(f"{role} umask {mask:03o}")


def burn_cpu(seconds: float) -> None:
    """Busy-loop until this process has used ``seconds`` of CPU time (not wall time): like the real
    app start, it takes longer when other processes compete for the cores."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def _bad_exit(script: str, line: int, code: int) -> None:
    """What the real scripts' ERR trap prints before ``exit code`` (bash ``errexit``)."""
    say(f"Exited with BAD EXIT CODE '{code}' in ./{script} script at line: {line}.", err=True)
    record(_state["role"], "exit", reason="bad_exit_code", exit_code=code)
    _exit(code)


def _uv(script: str, line: int, args: list[str], *, capture: bool = False) -> tuple[int, str]:
    """``uv ARGS`` found on PATH, as the real scripts run it (stdin, stderr inherited).

    ``STANDIN_UV`` wins when set: run through a pyenv shim, ``python3`` gets pyenv's own bin folder
    (which may hold a real uv) put first on PATH, ahead of the stand-in's."""
    uv = os.environ.get("STANDIN_UV") or shutil.which("uv")
    if uv is None:
        say(f"./{script}: line {line}: uv: command not found", err=True)
        return 127, ""
    done = subprocess.run([uv, *args], stdout=subprocess.PIPE if capture else None, text=True, check=False)
    return done.returncode, done.stdout or ""


def _first_words(text: str) -> str:
    """``| awk '{print $1}'`` inside ``$(...)``."""
    return "\n".join(line.split()[0] if line.split() else "" for line in text.splitlines()).rstrip("\n")


def _migrations(role: str, script: str) -> None:
    """``STANDIN_MIGRATIONS=true``: what the real scripts do about the schema before they boot.

    API: ``flask db downgrade`` / ``flask db upgrade`` through ``uv run`` when
    ``SPIFFWORKFLOW_BACKEND_DOWNGRADE_DB`` / ``..._UPGRADE_DB`` is ``true`` (a failure ends the
    script with its code, as errexit does). Background and worker: bin/wait_for_db_schema_migrations,
    i.e. ``flask db current`` and ``flask db heads`` (two app starts) every 2 s until they agree."""
    if role == "api":
        for var, line, command, text in (
            ("SPIFFWORKFLOW_BACKEND_DOWNGRADE_DB", 30, "downgrade", "Downgrading database..."),
            ("SPIFFWORKFLOW_BACKEND_UPGRADE_DB", 35, "upgrade", "Upgrading database..."),
        ):
            if os.environ.get(var) == "true":
                say(text)
                code, _ = _uv(script, line, ["run", "flask", "db", command])
                if code:
                    _bad_exit(script, line, code)
        return
    wait_script = "bin/wait_for_db_schema_migrations"
    poll = _float("SCHEMA_POLL", 2.0) or 0.0
    while True:
        code, current = _uv(wait_script, 11, ["run", "flask", "db", "current"], capture=True)
        if not code:
            code, head = _uv(wait_script, 12, ["run", "flask", "db", "heads"], capture=True)
        if code:
            # The helper script's trap fires, then the calling script's.
            say(f"Exited with BAD EXIT CODE '{code}' in {BACKEND_ROOT}/{wait_script} script at line: 11.", err=True)
            _bad_exit(script, 14, code)
        current, head = _first_words(current), _first_words(head)
        record(role, "schema", current=current, head=head)
        if current == head:
            say("DB migrations are complete.")
            return
        say("Waiting for db migrations to finish")
        # The real script prints the two values under each other's label; so does the stand-in.
        say(f"current revision: {head}")
        say(f"head revision: {current}")
        time.sleep(poll)


def _exec_celery(role: str) -> None:
    """What the real script does last: exec a Celery worker from the backend's venv (its direct-exec
    path, ``<root>/.venv/bin/celery``), here with the stand-in app and one pool process."""
    python = os.path.join(BACKEND_ROOT, ".venv", "bin", "python")
    argv = [python, "-m", "celery", "-A", "src.standin_celery_worker", "worker", "--loglevel=info", "--concurrency=1"]
    record(role, "celery", python=python)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(python, argv)
    except OSError as exc:
        say(f"./bin/start_celery_worker: line 25: {python}: {exc.strerror}", err=True)
        record(role, "error", reason="celery", error=str(exc), exit_code=127)
        _exit(127)


def main(role: str, script: str) -> None:
    _state["role"] = role
    _install_signals(role)
    record(role, "start")
    started = time.monotonic()

    if _flag("CHECK_CWD", "true") == "true" and os.path.realpath(os.getcwd()) != BACKEND_ROOT:
        say(f"error: Failed to spawn: `./{script}`: cwd {os.getcwd()} is not the backend root {BACKEND_ROOT}", err=True)
        record(role, "error", reason="cwd", exit_code=2)
        _exit(2)
    if _flag("MIGRATIONS") == "true":
        # Before the other checks, as in the real API script (the upgrade comes first there).
        _migrations(role, script)
    if role == "api":
        if not os.environ.get("SPIFFWORKFLOW_BACKEND_BPMN_SPEC_ABSOLUTE_DIR"):
            _bash_like_error(
                script, f"./{script}: line 86: SPIFFWORKFLOW_BACKEND_BPMN_SPEC_ABSOLUTE_DIR: unbound variable"
            )
            record(role, "error", reason="bpmn_dir_unset", exit_code=1)
            _exit(1)
        app_root = os.environ.get("SPIFFWORKFLOW_BACKEND_APPLICATION_ROOT", "")
        if app_root and app_root != "/":
            say(
                "ERROR: SPIFFWORKFLOW_BACKEND_APPLICATION_ROOT has been set. This variable has been renamed to "
                "SPIFFWORKFLOW_BACKEND_WSGI_PATH_PREFIX. Please use that instead.",
                err=True,
            )
            record(role, "error", reason="application_root", exit_code=1)
            _exit(1)

    text = _opt("PRINT")
    for _ in range(int(_float("PRINT_TIMES", 1) or 1) if text else 0):
        say(text)
        say(text, err=True)
    if _flag("ORPHAN") == "true":
        _spawn_orphan(role)
    if _flag("LINGER") == "true":
        _spawn_orphan(role, linger=True)
    if _flag("SPAWN_CHILD") == "true":
        _spawn_child(role)

    # The CPU the real role spends before it is ready (API: caches + gunicorn booting the app).
    burn_cpu(_float("BOOT_CPU", 0.0) or 0.0)
    delay = _float("STARTUP_DELAY", 0.0) or 0.0
    if delay:
        time.sleep(delay)
    _state["starting"] = False

    if role == "worker" and _flag("CELERY") == "true":
        _exec_celery(role)
    if role == "api":
        _serve_api(role)
    else:
        say(f"standin {role}: started pid={os.getpid()} host={socket.gethostname()}")
        record(role, "ready")
    _announce_ready(role)

    exit_after = _float("EXIT_AFTER", None)
    max_lifetime = _float("MAX_LIFETIME", 300.0) or 300.0
    interval = _float("HEARTBEAT", 1.0) or 1.0
    beats = 0
    while True:
        elapsed = time.monotonic() - started
        if exit_after is not None and elapsed >= exit_after:
            code = int(_opt("EXIT_CODE") or 0)
            say(f"{role} exiting with {code}")
            record(role, "exit", reason="exit_after", exit_code=code)
            _exit(code)
        if elapsed >= max_lifetime:
            record(role, "exit", reason="max_lifetime", exit_code=0)
            _exit(0)
        if role == "worker":
            beats += 1
            say(f"standin worker: alive ({beats})")
        step = interval if role == "worker" else 0.1
        if exit_after is not None:
            step = min(step, max(exit_after - elapsed, 0.01))
        time.sleep(step)


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "child":
    _child_main(sys.argv[2])
