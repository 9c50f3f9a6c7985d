"""Exit codes and the one exception type that carries them to the CLI.

Codes follow sysexits(3), as paperless and other container entrypoints do, so an orchestrator
can tell a configuration mistake (78: fix the manifest, restarting will not help) from a
dependency that is down (69: restarting later may help).
"""

from __future__ import annotations

OK = 0
CHECK_FAILED = 1  # doctor / healthcheck found a problem
USAGE = 2  # click/typer's own code for bad flags
UNAVAILABLE = 69  # EX_UNAVAILABLE: a dependency stayed down or refused us
SOFTWARE = 70  # EX_SOFTWARE: a bug in spiffctl
CONFIG = 78  # EX_CONFIG: configuration invalid
NOT_EXECUTABLE = 126  # the shell's convention for "found but cannot execute"
NOT_FOUND = 127  # the shell's convention for "command not found"


DEBUG_VAR = "SPIFFCTL_DEBUG"


def internal_error(detail: str) -> str:
    """The one line a bug is reported with (``detail`` already redacted)."""
    return f"internal error: {detail} (set {DEBUG_VAR}=1 for a traceback)"


def cannot_execute(path: object, reason: str) -> str:
    """The line for a script or interpreter the kernel would not execute (run's exec, the lease's child)."""
    return f"cannot execute {path}: {reason} (check its #! line)"


class SpiffctlError(Exception):
    """A failure the operator can act on: one line of text and the exit code to leave with.

    The message must already be redacted; the CLI prints it as-is after ``spiffctl: ``.
    """

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class ConfigError(SpiffctlError):
    """The environment or flags cannot work; restarting will not help."""

    def __init__(self, message: str) -> None:
        super().__init__(message, CONFIG)


class ConfigProblems(ConfigError):
    """Several configuration problems found at once, so the operator fixes them in one go."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class UnavailableError(SpiffctlError):
    def __init__(self, message: str) -> None:
        super().__init__(message, UNAVAILABLE)
