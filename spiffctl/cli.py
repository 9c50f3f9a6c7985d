"""The typer app: wires commands to their modules, turns errors into one line and an exit code.

Command modules are imported inside each command so ``spiffctl run`` loads only what it uses.
"""

from __future__ import annotations

import os
import sys
import threading
from enum import Enum
from pathlib import Path
from typing import Annotated, NoReturn, Protocol

import typer

from spiffctl import __version__, log
from spiffctl.commands import exits
from spiffctl.config import variables
from spiffctl.roles import ALL, ROLE_NAMES
from spiffctl.util import bounded, numbers
from spiffctl.util.errors import CONFIG, USAGE, SpiffctlError

app = typer.Typer(
    name="spiffctl",
    help="Run, check and supervise every role of spiffworkflow-backend.",
    # --install-completion / --show-completion: the roles complete from the choices below.
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

WEEK = 7 * 86400.0


# What ``--role`` accepts: the role table's names and ``all`` (shown and completed by click). Built
# from the table so a new role needs no edit here.
RoleName = Enum("RoleName", {name: name for name in (*ROLE_NAMES, ALL)}, type=str)  # type: ignore[misc]


EVERY_ROLE = RoleName(ALL)
ROLE_METAVAR = "[" + "|".join(r.value for r in RoleName) + "]"


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


class Sourced(Protocol):
    """click's context, whichever click (typer vendors its own in recent versions)."""

    def get_parameter_source(self, name: str) -> Enum | None: ...


def from_environment(ctx: Sourced, name: str) -> bool:
    """The option's value came from its variable: a bad one is configuration (78), not usage (2)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "ENVIRONMENT"


def seconds(value: str, flag: str, default: float, low: float = 0) -> float:
    """A duration flag (at most a week); the message names the flag and its variable."""
    return numbers.parse(value, name=flag, low=low, high=WEEK, default=default, exit_code=USAGE)


BACKEND_DIR_HELP = (
    "Backend root, the folder holding bin/ and migrations/ (default: /app when it holds the backend, "
    "else the current directory)."
)


@app.command(short_help="Check configuration, wait for dependencies, start a role's bin script.")
def run(
    ctx: typer.Context,
    role: Annotated[
        RoleName,
        typer.Option(
            "--role",
            envvar="SPIFFCTL_ROLE",
            show_envvar=True,
            case_sensitive=False,
            metavar=ROLE_METAVAR,
            help="The role to run.",
        ),
    ],
    backend_dir: Annotated[
        Path | None,
        typer.Option(
            "--backend-dir", envvar="SPIFFCTL_BACKEND_DIR", show_envvar=True, metavar="DIR", help=BACKEND_DIR_HELP
        ),
    ] = None,
    wait_timeout: Annotated[
        str,
        typer.Option(
            "--wait-timeout",
            envvar="SPIFFCTL_WAIT_TIMEOUT",
            show_envvar=True,
            metavar="SECONDS",
            help="How long to wait for the dependencies; 0 checks once.",
        ),
    ] = "60",
    no_wait: Annotated[
        bool,
        typer.Option("--no-wait", help="Skip the dependency checks and the schema step (the scripts do their own)."),
    ] = False,
) -> None:
    """Check the configuration, wait for the role's dependencies, then exec its bin script.

    `all` runs every role of this install on one box under supervisord.
    """
    from spiffctl.commands import run as command

    if from_environment(ctx, "wait_timeout"):
        timeout = variables.number(variables.WAIT_TIMEOUT, wait_timeout)
    else:
        timeout = seconds(wait_timeout, "--wait-timeout", 60)
    command.run(role.value, backend_dir=backend_dir, wait_timeout=timeout, wait=not no_wait)


@app.command(short_help="List the roles of the running all-in-one (state, pid, uptime).")
def status(
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON document: each role's state and the lease's last event.")
    ] = False,
) -> None:
    """One line per role of the running all-in-one: state, pid, uptime. Exit 3 when nothing runs."""
    from spiffctl.commands import status as command

    raise typer.Exit(command.status(as_json=as_json))


@app.command(short_help="Explain what is wrong and how to fix it (table or JSON).")
def doctor(
    role: Annotated[
        RoleName, typer.Option("--role", case_sensitive=False, metavar=ROLE_METAVAR, help="Check what this role needs.")
    ] = EVERY_ROLE,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document and nothing else.")] = False,
    timeout: Annotated[
        str, typer.Option("--timeout", metavar="SECONDS", help="Bound for every check (they run concurrently).")
    ] = "5",
    backend_dir: Annotated[
        Path | None,
        typer.Option(
            "--backend-dir", envvar="SPIFFCTL_BACKEND_DIR", show_envvar=True, metavar="DIR", help=BACKEND_DIR_HELP
        ),
    ] = None,
) -> None:
    """Check the configuration, the backend folder, the database and its schema, the broker, the
    Background lease and the connector proxy; explain each problem with its fix."""
    from spiffctl.commands import doctor as command

    bound = seconds(timeout, "--timeout", 5, low=0.1)
    raise typer.Exit(command.run(role.value, backend_dir=backend_dir, as_json=as_json, timeout=bound))


@app.command(short_help="One-line health probe for Docker and Kubernetes (exit 0 healthy, 1 otherwise).")
def healthcheck(
    role: Annotated[
        RoleName | None,
        typer.Option(
            "--role",
            case_sensitive=False,
            show_default=False,
            metavar=ROLE_METAVAR,
            help="The role to check (default: the one `run` started).",
        ),
    ] = None,
) -> None:
    """Quick, quiet probe for Docker HEALTHCHECK and Kubernetes: one line, exit 0 healthy, 1 unhealthy or starting."""
    from spiffctl.commands import healthcheck as command

    raise typer.Exit(command.run(role.value if role else None))


def main(argv: list[str] | None = None) -> NoReturn:
    """Console entry point: one line per error on stderr, sysexits codes, never a traceback."""
    args = sys.argv[1:] if argv is None else argv
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="spiffctl", standalone_mode=False)
    except SpiffctlError as e:
        code = exits.refused(e)
    except KeyboardInterrupt:
        code = 130
    except Exception as e:
        code = _framework_error(e)
    code = code if isinstance(code, int) else 0
    if threading.active_count() > 1:
        # A probe abandoned at its deadline still blocks in its driver: finalization would wait.
        bounded.leave(code)
    sys.stdout.flush()
    sys.exit(code)


def _framework_error(e: Exception) -> int:
    """typer/click usage errors (duck-typed: typer vendors click in recent versions)."""
    if hasattr(e, "format_message") and hasattr(e, "exit_code"):
        if type(e).__name__ in ("Abort",):
            return 130
        ctx = getattr(e, "ctx", None)
        if type(e).__name__ == "NoArgsIsHelpError" and ctx is not None:
            print(ctx.get_help())  # bare `spiffctl`: the help, as --help prints it
            return 0
        where = ctx.command_path if ctx is not None else "spiffctl"
        blamed = _bad_variable(e, ctx)
        if blamed:
            print(f"spiffctl: {exits.scrubber()(blamed)}", file=sys.stderr)
            return CONFIG
        param = getattr(e, "param", None)
        if param is not None and getattr(param, "opts", None):
            e.param_hint = list(param.opts)  # type: ignore[attr-defined]  # the flag only: it was the flag
        message = exits.scrubber()(" ".join(e.format_message().split()))
        log.say(f"{message} (see {where} --help)", level="ERROR")
        return int(e.exit_code)
    return exits.crashed(e)


def _bad_variable(e: Exception, ctx: Sourced | None) -> str:
    """The table's one line for a variable click refused (``SPIFFCTL_ROLE=apii``); "" for a flag."""
    param = getattr(e, "param", None)
    if ctx is None or param is None or not param.name or not from_environment(ctx, param.name):
        return ""
    name = param.envvar if isinstance(param.envvar, str) else ""
    variable = variables.BY_NAME.get(name)
    problem = variable.judge(os.environ.get(name, "")) if variable else None
    return str(problem) if problem else ""
