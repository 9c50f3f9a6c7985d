"""Stand-ins for spiffworkflow-backend's three bin scripts and for ``uv`` (``flask db ...``), and
helpers to read what they recorded.

``tests/standins/backend/`` is a fake backend root with the real script names
(``bin/boot_server_in_docker``, ``bin/start_blocking_apscheduler``, ``bin/start_celery_worker``)
and a four-revision linear Alembic history in ``migrations/versions`` (:data:`REVISIONS`).
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
``STANDIN_PRINT_TIMES`` print that text this many times (default 1): a chatty role
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
``STANDIN_CELERY``     ``true``: once started, the worker execs a real Celery worker (one pool
                       process) on ``SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL`` with the app in
                       ``src/standin_celery_worker.py``, run by ``<root>/.venv/bin/python`` as the
                       real script's direct exec does (:func:`give_venv` makes that python); it
                       answers Celery's ``ping`` like the backend's worker. Record ``celery``
``STANDIN_MAX_LIFETIME`` safety net: every stand-in process exits after this (default 300 s)
``STANDIN_CHECK_CWD``  ``false`` to skip the working-directory check
``STANDIN_BIND``       API bind address (default ``0.0.0.0``, like gunicorn's ``--bind``)
``STANDIN_BOOT_CPU``   CPU-seconds burnt (busy loop on ``time.process_time()``) before ready, after
                       the migration step: the real API's caches + gunicorn boot, the worker's
                       Celery start (``STANDIN_API_BOOT_CPU``, ``STANDIN_WORKER_BOOT_CPU``). Default 0
``STANDIN_MIGRATIONS`` ``true``: the real scripts' schema step, through ``uv`` on PATH, or
                       ``$STANDIN_UV`` when set (use the stand-in ``uv``: :func:`uv_env` sets both).
                       API: ``SPIFFWORKFLOW_BACKEND_DOWNGRADE_DB=true`` runs ``uv run flask db
                       downgrade`` (prints ``Downgrading database...``), then
                       ``..._UPGRADE_DB=true`` runs ``uv run flask db upgrade`` (``Upgrading
                       database...``); a failure exits with its code after ``Exited with BAD EXIT
                       CODE 'N' in ./bin/boot_server_in_docker script at line: L.`` (errexit).
                       Background and worker: bin/wait_for_db_schema_migrations: ``uv run flask db
                       current`` and ``uv run flask db heads`` (two app starts) until the first words
                       agree, printing ``Waiting for db migrations to finish`` then
                       ``DB migrations are complete.``; record ``schema`` (``current``, ``head``)
                       per round; a failing command exits with its code (BAD EXIT CODE lines)
``STANDIN_SCHEMA_POLL`` seconds between two rounds of that wait (default 2, as the real script)
====================== =========================================================================

The stand-in ``uv`` (``tests/standins/uv/uv``; :func:`uv_env` puts it first on PATH and names the
interpreter that has SQLAlchemy) understands ``uv run flask db upgrade|downgrade|current|heads``
with the backend root as cwd (else exit 2, Flask's "Could not locate a Flask application"), and
``uv run CMD...``, which it execs. Each ``flask db`` command first "creates the app": burns
``STANDIN_APP_CPU`` CPU-seconds (default 0). Then, on ``SPIFFWORKFLOW_BACKEND_DATABASE_URI``
(``postgresql[+psycopg2]://``, ``mysql[+mysqldb]://``, ``sqlite:///``; without it the backend's
defaults from ``..._DATABASE_TYPE`` and ``SPIFFWORKFLOW_BACKEND_ENV``, e.g. sqlite
``<root>/src/instance/db_<ENV>.sqlite3``) and ``<root>/migrations/versions/*.py``:

- ``upgrade``: stderr ``INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.`` (MySQLImpl,
  SQLiteImpl), ``... Will assume transactional DDL.`` (non-transactional on MySQL/SQLite), then per
  revision ``INFO  [alembic.runtime.migration] Running upgrade <from> -> <to>, <message>`` (``from``
  empty for the first). A fresh database gets ``CREATE TABLE alembic_version`` (no IF NOT EXISTS);
  each revision creates table ``standin_<revision>``, sleeps its share of
  ``STANDIN_UPGRADE_SECONDS`` (total, default 2) and writes the revision. PostgreSQL: one
  transaction for the whole upgrade (the backend's env.py); MySQL/SQLite: a commit per revision.
  Two at once: exactly one exits 1 with the driver's error as a traceback ending in
  ``sqlalchemy.exc.IntegrityError: (psycopg2.errors.UniqueViolation) duplicate key value violates
  unique constraint "pg_type_typname_nsp_index"`` (PostgreSQL, when the first commits),
  ``sqlalchemy.exc.OperationalError: (MySQLdb.OperationalError) (1050, "Table '...' already
  exists")`` or ``(sqlite3.OperationalError) table ... already exists`` / ``database is locked``.
  Driver names are printed as the real backend's drivers (psycopg2, MySQLdb) print them.
  ``STANDIN_UPGRADE_FAIL_AT=<revision>``: a real failing statement at that revision (its ``Running
  upgrade`` line is printed first, the failing table is ``standin_fail_at_<revision>``): traceback,
  exit 1; on PostgreSQL nothing stays applied. SIGTERM: rolls back, exit 143.
- ``downgrade``: one revision back (``Running downgrade <rev> -> <down>, <message>``), drops its table.
- ``current``: stdout ``<rev> (head)`` at head, ``<rev>`` behind, nothing on an empty database;
  ``heads``: ``<head> (head)`` (no database needed). An unknown revision: ``ERROR [flask_migrate]
  Error: Can't locate revision identified by '<rev>'``, exit 1.

Their records: role ``uv-upgrade`` / ``uv-downgrade`` / ``uv-current`` / ``uv-heads``, events
``start`` (``command``), ``revision`` (upgrade: ``revision``, ``down``; on PostgreSQL executed, committed
with the last) and ``exit`` (``exit_code``), with ``pid`` and ``monotonic`` like every record.
Options may be given as ``STANDIN_UV_<NAME>`` too.

The API honours ``SPIFFWORKFLOW_BACKEND_PORT`` (default 7000) and
``SPIFFWORKFLOW_BACKEND_WSGI_PATH_PREFIX``: ``GET <prefix>/v1.0/status`` answers ``{"ok": true}``.
Once ready every role prints ``<role> ready pid=N`` on stdout and ``<role> on stderr`` on stderr;
``<role> got SIGTERM`` when stopped, ``<role> exiting with N`` with ``STANDIN_EXIT_AFTER``.
SIGTERM: exit 0 (record ``stop``); SIGINT/SIGHUP: exit 128+n.

Records: ``role`` (``api``, ``background``, ``worker``, ``<role>-child``, ``<role>-orphan``),
``event`` (``start``, ``ready``, ``signal`` (ignored), ``stop``, ``exit``, ``error``, ``schema``), ``argv``,
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
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.support.poll import wait_until

BACKEND_TEMPLATE = Path(__file__).resolve().parent / "backend"
UV_DIR = Path(__file__).resolve().parent / "uv"
SITE = Path(__file__).resolve().parent / "site"

#: the fake backend's migration history, oldest first (tests/standins/backend/migrations/versions)
REVISIONS: tuple[str, ...] = ("3c8f2d1a9b04", "7e1b5a0c4d92", "a94d06f3e2b7", "d2f7c81b35e0")
HEAD = REVISIONS[-1]

#: role -> script path relative to the backend root (the real names)
SCRIPTS: Mapping[str, str] = {
    "api": "bin/boot_server_in_docker",
    "background": "bin/start_blocking_apscheduler",
    "worker": "bin/start_celery_worker",
}

Record = dict[str, Any]


def copy_backend(dest: Path, *, migrations: bool = True) -> Path:
    """Copy the fake backend root to ``dest`` (must not exist) and return it (resolved).

    ``migrations=False`` leaves out ``migrations/`` (for a caller that writes its own history)."""
    ignore = ["__pycache__"] if migrations else ["__pycache__", "migrations"]
    shutil.copytree(BACKEND_TEMPLATE, dest, symlinks=True, ignore=shutil.ignore_patterns(*ignore))
    return dest.resolve()


def give_venv(backend: Path, *, python: str = sys.executable, argv_log: Path | None = None, site: bool = False) -> Path:
    """Make ``<backend>/.venv/bin/python``, the backend venv's interpreter, run ``python`` (default:
    this test venv's, which has Celery); return its path.

    A wrapper, not a symlink: through a symlink Python would look for ``pyvenv.cfg`` next to the
    link and start without this venv's packages. With ``argv_log`` it appends each invocation's
    arguments (one JSON list a line) first, so a test can check what ``ps`` would have shown.
    With ``site`` the stand-in ``spiffworkflow_backend`` and ``apscheduler`` (:data:`SITE`) are
    importable by it, as the real packages are in the backend's venv."""
    bin_dir = backend / ".venv" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    wrapper = bin_dir / "python"
    wrapper.write_text(
        f"#!{python}\n"
        "import json, os, sys\n"
        f"site = {str(SITE) if site else ''!r}\n"
        "if site:\n"
        "    os.environ['PYTHONPATH'] = os.pathsep.join(filter(None, [site, os.environ.get('PYTHONPATH')]))\n"
        f"log = {str(argv_log) if argv_log else ''!r}\n"
        "if log:\n"
        "    with open(log, 'a', encoding='utf-8') as f:\n"
        "        f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"os.execv({python!r}, [{python!r}, *sys.argv[1:]])\n"
    )
    wrapper.chmod(0o755)
    return wrapper


def _engine(url: str) -> Any:
    """A SQLAlchemy engine on ``url`` with this venv's drivers (psycopg 3, PyMySQL), no pool."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    scheme, _, rest = url.partition("://")
    driver = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}.get(scheme.split("+")[0], scheme)
    return create_engine(f"{driver}://{rest}", poolclass=NullPool)


def versions(url: str) -> list[str]:
    """The rows of ``alembic_version`` (``[]`` when the table does not exist)."""
    from sqlalchemy import inspect, text

    engine = _engine(url)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return []
            return [row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))]
    finally:
        engine.dispose()


def set_version(url: str, revision: str) -> str:
    """Put the database at ``revision`` directly, as another replica's migration would; return ``url``."""
    from sqlalchemy import inspect, text

    engine = _engine(url)
    try:
        with engine.begin() as conn:
            if not inspect(conn).has_table("alembic_version"):
                conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
            conn.execute(text("DELETE FROM alembic_version"))
            conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": revision})
    finally:
        engine.dispose()
    return url


def at_head(url: str) -> str:
    """Mark the database at ``url`` as migrated to :data:`HEAD`; return ``url``.

    Tests of anything but migrations start the roles on such a database: on an empty one every
    role except an upgrading API waits for the schema."""
    return set_version(url, HEAD)


def uv_env(path: str | None = None) -> dict[str, str]:
    """``PATH`` with the stand-in ``uv`` first (before ``path``, default this process's PATH),
    ``STANDIN_UV_PYTHON``: this interpreter, which has SQLAlchemy and the drivers, and ``STANDIN_UV``:
    the stand-in scripts run that one even when a pyenv shim put a real uv ahead on their PATH."""
    rest = os.environ.get("PATH", "") if path is None else path
    return {
        "PATH": f"{UV_DIR}{os.pathsep}{rest}",
        "STANDIN_UV_PYTHON": sys.executable,
        "STANDIN_UV": str(UV_DIR / "uv"),
    }


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
