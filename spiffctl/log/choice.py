"""``SPIFFCTL_LOG_FORMAT``: which format spiffctl writes (its own lines and, in the all-in-one,
the roles' lines).

``auto`` follows the backend's own rule for its logs: it logs JSON whenever
``SPIFFWORKFLOW_BACKEND_ENV`` is set to anything but ``local_development``, so spiffctl's lines
then match the backend's, and text (today's format) otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping

FORMAT_VAR = "SPIFFCTL_LOG_FORMAT"
BACKEND_ENV = "SPIFFWORKFLOW_BACKEND_ENV"
DEVELOPMENT = "local_development"
AUTO, JSON, TEXT = "auto", "json", "text"
CHOICES = (AUTO, JSON, TEXT)


def choose(env: Mapping[str, str]) -> str:
    """``json`` or ``text``; :class:`ValueError` for a value that is neither of the choices."""
    value = env.get(FORMAT_VAR, "").strip().lower() or AUTO
    if value not in CHOICES:
        raise ValueError(value)
    if value != AUTO:
        return value
    backend_env = env.get(BACKEND_ENV, "")
    return JSON if backend_env and backend_env != DEVELOPMENT else TEXT
