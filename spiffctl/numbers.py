"""The one parser for spiffctl's own numeric settings (flags and ``SPIFFCTL_*`` variables).

Every message has the same shape: the flag or variable, the value as given, the range, and
what to write instead, so ``--wait-timeout abc`` and ``SPIFFCTL_LOCK_TTL=abc`` read alike.
"""

from __future__ import annotations

import math

from spiffctl.errors import CONFIG, USAGE, ConfigError, SpiffctlError
from spiffctl.redact import quote


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
    text = (raw or "").strip()
    if raw is None or (not text and exit_code != USAGE):
        return default
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        value = math.nan
    if not (low <= value <= high):  # also false for NaN
        what = f"a whole number of {unit}" if whole else f"a number of {unit}"
        message = f"{name}: {quote(raw)} is not {what} from {low:g} to {high:g}; use e.g. {default:g} (the default)"
        # ConfigError for a variable: callers that report configuration problems (doctor) catch it.
        raise ConfigError(message) if exit_code == CONFIG else SpiffctlError(message, exit_code)
    return value
