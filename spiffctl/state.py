"""spiffctl's private runtime folder: what ``run`` leaves for ``healthcheck`` and ``status``.

One folder per container (``SPIFFCTL_RUN_DIR``, default ``/tmp/spiffctl-<uid>``), mode 0700,
files 0600, written atomically (write + rename) so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RUN_DIR_VAR = "SPIFFCTL_RUN_DIR"
ROLE_FILE = "role"


def run_dir(env: Mapping[str, str] | None = None, *, create: bool = True) -> Path:
    env = os.environ if env is None else env
    path = Path(env.get(RUN_DIR_VAR) or f"{tempfile.gettempdir()}/spiffctl-{os.getuid()}")
    if create:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)
    return path


def role_run_dir(base: Path, role: str) -> Path:
    """Where one role of ``run --role all`` keeps its state: roles must not overwrite each other's files."""
    return base / "roles" / role


def write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    write_text(path, json.dumps(data, sort_keys=True))


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remember_role(role: str, env: Mapping[str, str] | None = None) -> None:
    """Record the role this container runs, so ``healthcheck`` needs no flag."""
    try:
        write_text(run_dir(env) / ROLE_FILE, role + "\n")
    except OSError:
        pass  # a read-only /tmp must not stop the role; healthcheck then needs --role


def remembered_role(env: Mapping[str, str] | None = None) -> str | None:
    try:
        return (run_dir(env, create=False) / ROLE_FILE).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


# The process a role runs as: ``run`` execs the role's script in place, so spiffctl's own pid is
# the backend's pid from then on. ``healthcheck --role worker`` looks it up here; the start time
# (from /proc) guards against the pid having been reused by an unrelated process.
PROCESS_FILE = "{role}.process.json"
# Written by the Background runner (lease holder or standby) on every renewal; see healthcheck.
BACKGROUND_FILE = "background.json"


def process_start(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot; ``None`` when it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    if not fields or fields[0] in ("Z", "X"):
        return None
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def remember_process(role: str, env: Mapping[str, str] | None = None) -> None:
    """Record this process as the one running ``role`` (call it right before the exec)."""
    pid = os.getpid()
    try:
        write_json(run_dir(env) / PROCESS_FILE.format(role=role), {"pid": pid, "start": process_start(pid)})
    except OSError:
        pass  # as for remember_role: a read-only /tmp must not stop the role


def remembered_process(role: str, env: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    return read_json(run_dir(env, create=False) / PROCESS_FILE.format(role=role))
