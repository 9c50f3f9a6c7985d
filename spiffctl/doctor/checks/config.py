"""Configuration: every rule of :mod:`spiffctl.settings`, per-role rules, and the scheduler trap."""

from __future__ import annotations

from spiffctl import state
from spiffctl.doctor.engine import Context, Result, fail, ok, warn
from spiffctl.errors import ConfigError
from spiffctl.roles import SCHEDULER_IN_APP, overrides
from spiffctl.settings import Problem, role_problems

NAME = "configuration"


def check(ctx: Context) -> list[Result]:
    problems: list[Problem] = list(ctx.settings.problems)
    for role in ctx.roles:
        problems += [p for p in role_problems(ctx.settings, role) if p not in problems]
    problems += trap(ctx)
    rows = run_folder(ctx)
    if not problems and not rows:
        return [ok(NAME, "no problems found")]
    seen: dict[str, int] = {}
    # One row per finding, named after its variable so JSON consumers can key on it.
    for p in sorted(problems, key=lambda p: p.severity != "error"):
        seen[p.variable] = seen.get(p.variable, 0) + 1
        name = f"{NAME}: {p.variable}" + (f" #{seen[p.variable]}" if seen[p.variable] > 1 else "")
        make = fail if p.severity == "error" else warn
        rows.append(make(name, f"{p.variable} {p.message}", p.fix))
    return rows


def run_folder(ctx: Context) -> list[Result]:
    """The line every other command exits 78 with, as a failing row."""
    try:
        state.run_dir(ctx.settings.env, create=False)
    except ConfigError as e:
        detail, _, hint = e.message.partition("; ")
        return [fail(f"{NAME}: {state.RUN_DIR_VAR}", detail, hint)]
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
