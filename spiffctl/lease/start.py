"""How the Background's scheduler starts under the lease: a warm child (default) or the stock script.

``SPIFFCTL_BACKGROUND_START=warm`` (default): every replica keeps the backend's app loaded in a
warm child (:mod:`spiffctl.lease.warm`, run by ``<backend root>/.venv/bin/python``) and starts the
scheduler in it when it holds the lease. ``script``: run ``bin/start_blocking_apscheduler`` as
before (two app starts and a 100 s sleep after taking the lease). Without that interpreter the
warm start cannot work, so the script runs instead, said in one line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from spiffctl.config import variables
from spiffctl.util.errors import ConfigError

START = "SPIFFCTL_BACKGROUND_START"
WARM_CHILD = Path(__file__).resolve().with_name("warm.py")


@dataclass(frozen=True)
class StartMode:
    warm: bool
    why: str  # for doctor and the start-up line
    python: Path  # the backend venv's interpreter
    fallback: bool = False  # warm was asked for but cannot work: say so


def venv_python(backend_dir: Path) -> Path:
    return backend_dir / ".venv" / "bin" / "python"


def start_mode(env: Mapping[str, str], backend_dir: Path) -> StartMode:
    """The mode ``env`` asks for and can get; :class:`ConfigError` (78) for a value that is neither."""
    raw = env.get(START) or "warm"
    problem = variables.BY_NAME[START].judge(raw)
    if problem is not None:
        raise ConfigError(str(problem))  # the variables table's own words, as every command says them
    mode = raw.strip().lower()
    python = venv_python(backend_dir)
    if mode == "script":
        return StartMode(False, f"{START}=script: the scheduler starts through the backend's script", python)
    if not os.access(python, os.X_OK):
        why = f"{START}=warm but {python} is missing or not executable: the scheduler starts through the script"
        return StartMode(False, why, python, fallback=True)
    return StartMode(True, f"{START}=warm: a warm child run by {python} keeps the app loaded", python)
