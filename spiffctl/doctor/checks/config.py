"""Configuration: every rule of :mod:`spiffctl.config.settings`, per-role rules, and the scheduler trap."""

from __future__ import annotations

from spiffctl import state
from spiffctl.config.problem import Problem
from spiffctl.config.settings import role_problems
from spiffctl.doctor.engine import Context, Result, findings, ok
from spiffctl.roles import SCHEDULER_IN_APP, overrides
from spiffctl.util.errors import ConfigError

NAME = "configuration"


def check(ctx: Context) -> Result:
    problems: list[Problem] = list(ctx.settings.problems)
    for role in ctx.roles:
        problems += [p for p in role_problems(ctx.settings, role) if p not in problems]
    problems += trap(ctx)
    problems += run_folder(ctx)
    return findings(NAME, problems) if problems else ok(NAME, "no problems found")


def run_folder(ctx: Context) -> list[Problem]:
    """The line every other command exits 78 with, as a finding of this check."""
    try:
        state.run_dir(ctx.settings.env, create=False)
    except ConfigError as e:
        detail, _, hint = e.message.partition("; ")
        _, _, detail = detail.partition(": ")
        return [Problem(state.RUN_DIR_VAR, detail, hint)]
    return []


def trap(ctx: Context) -> list[Problem]:
    """The scheduler-in-app switch contradicting a split role: spiffctl forces it off, so a warning.

    Run without spiffctl (or by another entrypoint) the same environment starts one scheduler in
    every gunicorn worker and a second one inside the Background.
    """
    names = [
        role.name
        for role in ctx.roles
        if any(var == SCHEDULER_IN_APP for var, _, _ in overrides(ctx.settings.env, role))
    ]
    if not names:
        return []
    value = ctx.settings.env.get(SCHEDULER_IN_APP, "")
    return [
        Problem(
            SCHEDULER_IN_APP,
            f"is {value!r}: with split roles every process that creates the app starts its own scheduler "
            f"(spiffctl forces it to false for {', '.join(names)})",
            f"set {SCHEDULER_IN_APP}=false; the Background role is the only scheduler",
            "warning",
        )
    ]
