"""The backend folder: the roles' bin scripts, and the process-model folder the API writes to."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from spiffctl.config.settings import BPMN_DIR
from spiffctl.doctor.engine import Context, Result, fail, ok, skip, warn

BACKEND_HINT = "point --backend-dir (SPIFFCTL_BACKEND_DIR) at the backend root, the folder holding bin/ and migrations/"


def scripts(ctx: Context) -> Result:
    name = "backend scripts"
    root = ctx.settings.backend_dir
    missing: list[str] = []
    not_exec: list[str] = []
    for role in ctx.roles:
        path = root / role.script
        if not path.is_file():
            missing.append(role.script)
        elif not os.access(path, os.X_OK):
            not_exec.append(role.script)
    if missing:
        return fail(name, f"{', '.join(missing)} not found in {root}", BACKEND_HINT)
    if not_exec:
        return fail(name, f"{', '.join(not_exec)} in {root} not executable", f"chmod +x {' '.join(not_exec)}")
    return ok(name, f"{', '.join(r.script for r in ctx.roles)} executable in {root}")


def process_models(ctx: Context) -> Result:
    name = "process models"
    value = ctx.settings.env.get(BPMN_DIR)
    if not value:
        return skip(name, f"{BPMN_DIR} is not set (see configuration)")
    path = Path(value)
    if not path.is_absolute():
        return skip(name, f"not checked: {BPMN_DIR} is relative (see configuration)")
    if not path.exists():
        ancestor = _existing_ancestor(path)
        if ancestor.is_dir() and _writable(ancestor):
            # The API script runs `git init` on it, which creates the missing folders.
            return warn(
                name,
                f"{path} does not exist yet; the api role's git init will create it",
                f"create it (or mount the process-model volume at {path}) so every role sees the same models",
            )
        return fail(name, f"{path} does not exist and {ancestor} is not writable", f"create {path} or fix {BPMN_DIR}")
    if not path.is_dir():
        return fail(name, f"{path} is not a folder", f"point {BPMN_DIR} at the process-model folder")
    if not _writable(path):
        return fail(
            name,
            f"{path} is not writable by uid {os.getuid()}",
            f"make it writable for uid {os.getuid()} (chown/chmod, a read-write mount, chattr -i)",
        )
    return ok(name, f"{path} exists and is writable")


def _existing_ancestor(path: Path) -> Path:
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    return ancestor


def _writable(folder: Path) -> bool:
    """Try it: access(2) says yes to root on immutable folders and knows nothing of NFS root_squash."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".spiffctl-doctor-", dir=folder)
    except OSError:
        return False
    os.close(fd)
    try:
        os.unlink(tmp)
    except OSError:
        pass
    return True
