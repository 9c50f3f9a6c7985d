"""How a command leaves on an error: one redacted line per line and an exit code, never a traceback.

Shared by :mod:`spiffctl.cli` and the Background's resident runner (:mod:`spiffctl.lease.resident`),
which runs without typer and must leave exactly as the CLI would.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from spiffctl import log
from spiffctl.util.errors import DEBUG_VAR, SOFTWARE, SpiffctlError, internal_error


def scrubber() -> Callable[[str], str]:
    """Every line spiffctl prints on the way out passes here: messages are redacted where they
    are made, and this is the net under them (a value quoted by a library, a missed path)."""
    from spiffctl.util.redact import Redactor

    return Redactor.for_env(os.environ)


def refused(e: SpiffctlError) -> int:
    scrub = scrubber()
    for line in e.message.splitlines():
        log.say(scrub(line), level="ERROR")
    return e.exit_code


def crashed(e: Exception) -> int:
    """A bug: one line and 70, or the traceback itself when debugging."""
    if os.environ.get(DEBUG_VAR):
        raise e
    log.say(internal_error(f"{type(e).__name__}: {scrubber()(str(e))}"), level="ERROR")
    return SOFTWARE
