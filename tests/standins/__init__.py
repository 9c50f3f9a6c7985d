"""Stand-ins for spiffworkflow-backend's three bin scripts, and helpers to read what they recorded.

``tests/standins/backend/`` is a fake backend root with the real script names
(``bin/boot_server_in_docker``, ``bin/start_blocking_apscheduler``, ``bin/start_celery_worker``).
Copy it with :func:`copy_backend` (or the ``fake_backend`` fixture) before changing it.

Like the real scripts, they must run with the backend root as working directory (otherwise they
exit 2, as ``uv run ./bin/...`` would), and the API one needs
``SPIFFWORKFLOW_BACKEND_BPMN_SPEC_ABSOLUTE_DIR`` (bash ``set -u``: exit 1, "unbound variable")
and refuses ``SPIFFWORKFLOW_BACKEND_APPLICATION_ROOT`` other than ``/`` (exit 1).

Options (environment, all optional). Every ``STANDIN_<NAME>`` may also be given per role as
``STANDIN_<ROLE>_<NAME>`` (``STANDIN_API_EXIT_AFTER``), which wins: under ``run --role all`` the
three roles share one environment.

====================== =========================================================================
``STANDIN_RECORD``     file to append JSON records to, one object per line (single O_APPEND write)
``STANDIN_PRINT``      text printed once at start to stdout and to stderr
``STANDIN_EXIT_AFTER`` seconds after start to exit by itself, with ``STANDIN_EXIT_CODE`` (default 0)
``STANDIN_STARTUP_DELAY`` seconds of "start-up" before ready (API: before it listens)
``STANDIN_IGNORE_TERM`` ``true``: ignore SIGTERM (record it) like a bash PID 1 in start-up;
                       ``startup``: only during ``STANDIN_STARTUP_DELAY``
``STANDIN_SPAWN_CHILD`` ``true``: spawn a python grandchild in the same process group (role
                       ``<role>-child``), which does not die with its parent
``STANDIN_ORPHAN``     ``true``: double-fork an orphan (role ``<role>-orphan``) that lives
                       ``STANDIN_ORPHAN_SECONDS`` (default 3) in the same process group, then exits
``STANDIN_LINGER``     ``true``: double-fork a grandchild into its own session (role ``<role>-orphan``,
                       ``linger: true``) that lives until ``STANDIN_MAX_LIFETIME``: a daemon that
                       escaped its role's process group
``STANDIN_SHOW_ENV``   comma-separated names: print ``<role> env NAME=value`` for each once ready
``STANDIN_SHOW_UMASK`` ``true``: print ``<role> umask NNN`` once ready
``STANDIN_STATUS_OK``  ``false``: API status answers 500 ``{"ok": false}``
``STANDIN_STATUS_FILE`` file read at every status request: content ``false`` -> 500 (flip at runtime)
``STANDIN_HEARTBEAT``  worker's print interval in seconds (default 1)
``STANDIN_MAX_LIFETIME`` safety net: every stand-in process exits after this (default 300 s)
``STANDIN_CHECK_CWD``  ``false`` to skip the working-directory check
``STANDIN_BIND``       API bind address (default ``0.0.0.0``, like gunicorn's ``--bind``)
====================== =========================================================================

The API honours ``SPIFFWORKFLOW_BACKEND_PORT`` (default 7000) and
``SPIFFWORKFLOW_BACKEND_WSGI_PATH_PREFIX``: ``GET <prefix>/v1.0/status`` answers ``{"ok": true}``.
Once ready every role prints ``<role> ready pid=N`` on stdout and ``<role> on stderr`` on stderr;
``<role> got SIGTERM`` when stopped, ``<role> exiting with N`` with ``STANDIN_EXIT_AFTER``.
SIGTERM: exit 0 (record ``stop``); SIGINT/SIGHUP: exit 128+n.

Records: ``role`` (``api``, ``background``, ``worker``, ``<role>-child``, ``<role>-orphan``),
``event`` (``start``, ``ready``, ``signal`` (ignored), ``stop``, ``exit``, ``error``), ``argv``,
``cwd``, ``pid``, ``ppid``, ``pgid``, ``sid``, ``monotonic`` (CLOCK_MONOTONIC, comparable with
``time.monotonic()`` in the test), ``time``, ``env``; plus ``signal``, ``action``, ``reason``,
``exit_code``, ``port``, ``status_path`` where they apply.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.servers import wait_until

BACKEND_TEMPLATE = Path(__file__).resolve().parent / "backend"

#: role -> script path relative to the backend root (the real names)
SCRIPTS: Mapping[str, str] = {
    "api": "bin/boot_server_in_docker",
    "background": "bin/start_blocking_apscheduler",
    "worker": "bin/start_celery_worker",
}

Record = dict[str, Any]


def copy_backend(dest: Path) -> Path:
    """Copy the fake backend root to ``dest`` (must not exist) and return it (resolved)."""
    shutil.copytree(BACKEND_TEMPLATE, dest, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    return dest.resolve()


def standin_env(record: Path | str, **options: object) -> dict[str, str]:
    """``STANDIN_*`` variables: ``standin_env(path, exit_after=2, ignore_term=True)``.

    Booleans become ``true``/``false``; keys are upper-cased and prefixed with ``STANDIN_``.
    """
    env = {"STANDIN_RECORD": str(record)}
    for key, value in options.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        env["STANDIN_" + key.upper()] = text
    return env


def read_records(path: Path | str) -> list[Record]:
    """All records in ``path`` in write order; ``[]`` if the file does not exist yet."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def find_records(path: Path | str, *, role: str | None = None, event: str | None = None) -> list[Record]:
    """The records matching ``role`` and ``event`` (None matches anything)."""
    return [
        r for r in read_records(path) if (role is None or r["role"] == role) and (event is None or r["event"] == event)
    ]


def wait_for_record(
    path: Path | str, *, role: str | None = None, event: str | None = None, count: int = 1, timeout: float = 15.0
) -> list[Record]:
    """Wait (bounded) until at least ``count`` matching records exist; return all matching ones."""
    return wait_until(
        lambda: (found := find_records(path, role=role, event=event)) and len(found) >= count and found,
        timeout=timeout,
        what=f"{count} record(s) role={role} event={event} in {path}",
    )


def start_standin(
    backend: Path,
    role: str,
    env: Mapping[str, str] | None = None,
    *,
    cwd: Path | None = None,
    capture: bool = True,
) -> subprocess.Popen[str]:
    """Run ``role``'s script of ``backend`` directly (not through spiffctl), in a new session.

    The child gets ``os.environ`` plus ``env``; cwd defaults to ``backend``. With ``capture``,
    stdout and stderr are pipes (text). The caller must end it: :func:`kill_group`.
    """
    out = subprocess.PIPE if capture else None
    return subprocess.Popen(
        [str(backend / SCRIPTS[role])],
        cwd=backend if cwd is None else cwd,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=out,
        text=True,
        start_new_session=True,
    )


def kill_group(proc: subprocess.Popen[str], sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the process group ``proc`` leads (ignore if gone) and reap ``proc``."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
    if sig == signal.SIGKILL:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=10)
