"""The typer app: wires commands to their modules, turns errors into one line and an exit code.

Command modules are imported inside each command so ``spiffctl run`` loads only what it uses.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from spiffctl import __version__
from spiffctl.errors import USAGE, SpiffctlError

app = typer.Typer(
    name="spiffctl",
    help="Run, check and supervise every role of spiffworkflow-backend.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

ROLE_HELP = "api, background, worker or all"


def _version(value: bool) -> None:
    if value:
        print(f"spiffctl {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Run, check and supervise every role of spiffworkflow-backend."""


def seconds(value: str, flag: str, example: str) -> float:
    """Parse a duration flag; the message names the flag and its variable."""
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not (0 <= number < 86400 * 7) or number != number:
        raise SpiffctlError(f"{flag}: {value!r} is not a number of seconds; use e.g. {example}", USAGE)
    return number


@app.command()
def run(
    role: Annotated[str, typer.Option("--role", envvar="SPIFFCTL_ROLE", help=ROLE_HELP, show_envvar=True)],
    backend_dir: Annotated[
        Path | None,
        typer.Option(
            "--backend-dir",
            envvar="SPIFFCTL_BACKEND_DIR",
            show_envvar=True,
            help="Backend root (default /app when it holds the backend, else the current directory).",
        ),
    ] = None,
    wait_timeout: Annotated[
        str,
        typer.Option(
            "--wait-timeout",
            envvar="SPIFFCTL_WAIT_TIMEOUT",
            show_envvar=True,
            metavar="SECONDS",
            help="How long to wait for dependencies (0 = check once).",
        ),
    ] = "60",
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Do not check dependencies.")] = False,
) -> None:
    """Check configuration, wait for the role's dependencies, then exec its bin script."""
    from spiffctl.commands import run as command

    timeout = seconds(wait_timeout, "--wait-timeout / SPIFFCTL_WAIT_TIMEOUT", "60 (0 = check once)")
    command.run(role, backend_dir=backend_dir, wait_timeout=timeout, wait=not no_wait)


@app.command()
def status() -> None:
    """One line per role of the running all-in-one (state, pid, uptime). Exit 3 when nothing runs."""
    from spiffctl.commands import status as command

    raise typer.Exit(command.status())


@app.command()
def doctor(
    role: Annotated[str, typer.Option("--role", help=ROLE_HELP + " (default all)")] = "all",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document and nothing else.")] = False,
    timeout: Annotated[
        str, typer.Option("--timeout", metavar="SECONDS", help="Bound for every check (they run concurrently).")
    ] = "5",
    backend_dir: Annotated[
        Path | None,
        typer.Option("--backend-dir", envvar="SPIFFCTL_BACKEND_DIR", show_envvar=True, help="Backend root."),
    ] = None,
) -> None:
    """Check configuration, backend folder, database schema, broker and connector proxy; explain each problem."""
    from spiffctl.commands import doctor as command

    bound = seconds(timeout, "--timeout", "5")
    if bound <= 0:
        raise SpiffctlError("--timeout: must be more than 0 seconds", USAGE)
    raise typer.Exit(command.run(role, backend_dir=backend_dir, as_json=as_json, timeout=bound))


@app.command()
def healthcheck(
    role: Annotated[
        str | None, typer.Option("--role", help="api, background or worker (default: the role `run` started)")
    ] = None,
) -> None:
    """Quiet, quick probe for Docker HEALTHCHECK and Kubernetes: one line, exit 0 healthy or 1 unhealthy."""
    from spiffctl.commands import healthcheck as command

    raise typer.Exit(command.run(role))


def main(argv: list[str] | None = None) -> NoReturn:
    """Console entry point: one line per error on stderr, sysexits codes, never a traceback."""
    args = sys.argv[1:] if argv is None else argv
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="spiffctl", standalone_mode=False)
    except SpiffctlError as e:
        for line in e.message.splitlines():
            print(f"spiffctl: {line}", file=sys.stderr)
        code = e.exit_code
    except KeyboardInterrupt:
        code = 130
    except Exception as e:
        code = _framework_error(e)
    sys.stdout.flush()
    sys.exit(code if isinstance(code, int) else 0)


def _framework_error(e: Exception) -> int:
    """typer/click usage errors (duck-typed: typer vendors click in recent versions)."""
    if hasattr(e, "format_message") and hasattr(e, "exit_code"):
        if type(e).__name__ in ("Abort",):
            return 130
        message = " ".join(e.format_message().split())
        print(f"spiffctl: {message} (see spiffctl --help)", file=sys.stderr)
        return int(e.exit_code)
    if os.environ.get("SPIFFCTL_DEBUG"):
        raise e
    from spiffctl.redact import Redactor, env_secrets

    scrub = Redactor(env_secrets(os.environ))
    print(
        f"spiffctl: internal error: {type(e).__name__}: {scrub(str(e))} (set SPIFFCTL_DEBUG=1 for a traceback)",
        file=sys.stderr,
    )
    return 70  # EX_SOFTWARE
