"""spiffctl's private runtime folder: what ``run`` leaves for ``healthcheck`` and ``status``.

One folder per container (``SPIFFCTL_RUN_DIR``; default ``$XDG_RUNTIME_DIR/spiffctl``, else
``/run/spiffctl`` for root, else ``/tmp/spiffctl-<uid>``), private as :mod:`spiffctl.util.privdir` checks
it; files 0600, written atomically (write + rename) so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spiffctl.util import privdir, procfs
from spiffctl.util.errors import ConfigError
from spiffctl.util.redact import quote

RUN_DIR_VAR = "SPIFFCTL_RUN_DIR"
ROLE_FILE = "role"
# The all-in-one supervisord's private control socket (read by `spiffctl status`).
SOCKET_NAME = "supervisor.sock"


XDG_RUNTIME_DIR = "XDG_RUNTIME_DIR"


def default_run_dir(env: Mapping[str, str]) -> Path:
    """Not in a world-writable folder where one exists: the user's runtime folder, /run for root."""
    xdg = env.get(XDG_RUNTIME_DIR) or ""
    if xdg.startswith("/") and privdir.refusal(Path(xdg)) is None:
        return Path(xdg) / "spiffctl"
    if os.geteuid() == 0 and os.path.isdir("/run"):
        return Path("/run/spiffctl")
    return Path(f"{tempfile.gettempdir()}/spiffctl-{os.getuid()}")


def run_dir(env: Mapping[str, str] | None = None, *, create: bool = True) -> Path:
    """The run folder; with ``create``, made (0700) if missing. :class:`ConfigError` when unsafe or unusable.

    Without ``create`` a missing folder is fine (nothing ran yet) but an unsafe one is refused
    all the same, so every command answers a bad ``SPIFFCTL_RUN_DIR`` with the same line."""
    env = os.environ if env is None else env
    given = env.get(RUN_DIR_VAR) or ""
    path = Path(given) if given else default_run_dir(env)
    why = _refused_name(given) if given else None
    if why is None:
        try:
            privdir.ensure(path, create=create)
        except privdir.Unsafe as e:
            why = str(e)
    if why is not None:
        what = quote(given) if given else f"the default run folder {path}"
        raise ConfigError(
            f"{RUN_DIR_VAR}: {what} {why}; point {RUN_DIR_VAR} at a folder of your own that only you can write "
            "(created 0700 when missing), or unset it"
        )
    return path


def _refused_name(given: str) -> str | None:
    if not given.startswith("/"):
        return "is not an absolute path"
    if ".." in Path(given).parts:
        return "contains '..'"
    if Path(given) == Path("/"):
        return "is the root folder"
    return None


def role_run_dir(base: Path, role: str) -> Path:
    """Where one role of ``run --role all`` keeps its state: roles must not overwrite each other's files."""
    return base / "roles" / role


def write_text(path: Path, text: str) -> None:
    privdir.write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    write_text(path, json.dumps(data, sort_keys=True))


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(privdir.read_bytes(path))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remember_role(role: str, env: Mapping[str, str] | None = None) -> None:
    """Record the role this container runs, so ``healthcheck`` needs no flag."""
    try:
        write_text(run_dir(env) / ROLE_FILE, role + "\n")
    except (OSError, ConfigError):
        pass  # `run` has warned already (check_run_dir); the role must start anyway


def remembered_role(env: Mapping[str, str] | None = None) -> str | None:
    try:
        return privdir.read_bytes(run_dir(env, create=False) / ROLE_FILE).decode("utf-8").strip() or None
    except (OSError, ValueError):
        return None


# What a role of the all-in-one is waiting for before its script starts (the schema, the API):
# `spiffctl status` shows it as waiting rather than running. Removed right before the exec.
WAITING_FILE = "waiting.json"


def set_waiting(on: str, env: Mapping[str, str] | None = None, *, seconds: float | None = None) -> None:
    """Say what this process waits for (``seconds``: a deliberate wait of known length)."""
    pid = os.getpid()
    now = time.time()
    before = read_json(run_dir(env, create=False) / WAITING_FILE) or {}
    if before.get("pid") == pid and before.get("on") == on:
        now = before.get("since", now)  # the same wait, rewritten: it started then
    record = {"pid": pid, "start": procfs.start_time(pid), "on": on, "since": now}
    if seconds is not None:
        record["until"] = time.time() + seconds
    try:
        write_json(run_dir(env) / WAITING_FILE, record)
    except (OSError, ConfigError):
        pass  # status then shows the role as running: a display matter only


def waiting(env: Mapping[str, str] | None = None, pid: object = None) -> dict[str, Any] | None:
    """The wait this role's live process declared; ``None`` when none, or when the file was left by
    an earlier process (its pid gone or reused: the start time differs). ``pid``: must be this one."""
    record = read_json(run_dir(env, create=False) / WAITING_FILE)
    if record is None or (pid is not None and record.get("pid") != pid):
        return None
    return record if procfs.alive(record.get("pid"), record.get("start")) else None


def waiting_line(record: Mapping[str, Any], now: float) -> str:
    """``waiting for X (12 s so far)`` or, for a wait of known length, ``(3 s left of 15 s)``."""
    since, until = record.get("since"), record.get("until")
    on = record.get("on") or "its turn"
    if isinstance(since, (int, float)) and isinstance(until, (int, float)):
        return f"waiting {until - since:.0f} s for {on} ({max(until - now, 0):.0f} s left)"
    if isinstance(since, (int, float)):
        return f"waiting for {on} ({max(now - since, 0):.0f} s so far)"
    return f"waiting for {on}"


def done_waiting(env: Mapping[str, str] | None = None) -> None:
    try:
        (run_dir(env, create=False) / WAITING_FILE).unlink(missing_ok=True)
    except OSError:
        pass


# The process a role runs as: ``run`` execs the role's script in place, so spiffctl's own pid is
# the backend's pid from then on. ``healthcheck --role worker`` looks it up here; the start time
# (from /proc) guards against the pid having been reused by an unrelated process.
PROCESS_FILE = "{role}.process.json"
# Written by the Background runner (lease holder or standby) on every renewal; see healthcheck.
BACKGROUND_FILE = "background.json"


def remember_process(role: str, backend_dir: Path, env: Mapping[str, str] | None = None) -> None:
    """Record this process as the one running ``role`` (call it right before the exec).

    The backend root goes with it: ``healthcheck --role worker`` runs Celery from that root's venv,
    whatever folder (or ``--backend-dir``) the healthcheck itself is started with."""
    pid = os.getpid()
    record = {"pid": pid, "start": procfs.start_time(pid), "backend_dir": str(backend_dir)}
    try:
        write_json(run_dir(env) / PROCESS_FILE.format(role=role), record)
    except (OSError, ConfigError):
        pass  # as for remember_role


def remembered_process(role: str, env: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    return read_json(run_dir(env, create=False) / PROCESS_FILE.format(role=role))
