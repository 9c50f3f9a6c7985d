"""The one parser for spiffctl's own numeric settings (flags and ``SPIFFCTL_*`` variables).

Every message has the same shape: the flag or variable, the value as given, the range, and
what to write instead, so ``--wait-timeout abc`` and ``SPIFFCTL_LOCK_TTL=abc`` read alike.
"""

from __future__ import annotations

import math

from spiffctl.util.errors import CONFIG, USAGE, ConfigError, SpiffctlError
from spiffctl.util.redact import quote


def complaint(raw: str, *, low: float, high: float, unit: str = "seconds", whole: bool = False) -> str | None:
    """What is wrong with ``raw`` as a number from ``low`` to ``high``; ``None`` when nothing is."""
    text = raw.strip()
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        value = math.nan
    if low <= value <= high:  # false for NaN
        return None
    what = f"a whole number of {unit}" if whole else f"a number of {unit}"
    return f"{quote(raw)} is not {what} from {low:g} to {high:g}"


def fix(default: float) -> str:
    return f"use e.g. {default:g} (the default)"


def parse(
    raw: str | None,
    *,
    name: str,
    low: float,
    high: float,
    default: float,
    unit: str = "seconds",
    whole: bool = False,
    exit_code: int = CONFIG,
) -> float:
    """``raw`` as a number from ``low`` to ``high``; ``default`` when ``None``.

    An empty variable counts as unset (the backend's rule for its own variables, kept for ours),
    so ``""`` is the default too, except for a flag (``exit_code`` 2): ``--wait-timeout ""`` is
    a mistake. ``exit_code``: 2 (usage) for a flag, 78 (configuration) for a variable.
    """
    if raw is None or (not raw.strip() and exit_code != USAGE):
        return default
    wrong = complaint(raw, low=low, high=high, unit=unit, whole=whole)
    if wrong:
        message = f"{name}: {wrong}; {fix(default)}"
        # ConfigError for a variable: callers that report configuration problems (doctor) catch it.
        raise ConfigError(message) if exit_code == CONFIG else SpiffctlError(message, exit_code)
    text = raw.strip()
    return int(text) if whole else float(text)
