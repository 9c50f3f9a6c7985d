"""How the Background's scheduler starts under the lease: a warm child or the stock script, and why."""

from __future__ import annotations

from spiffctl.doctor.engine import Context, Result, fail, ok, warn
from spiffctl.errors import ConfigError
from spiffctl.lease.start import START, start_mode

NAME = "background start"


def check(ctx: Context) -> Result:
    try:
        mode = start_mode(ctx.settings.env, ctx.settings.backend_dir)
    except ConfigError as e:
        return fail(NAME, e.message, f"unset {START} (warm) or set it to script")
    if mode.fallback:
        return warn(
            NAME,
            f"{mode.why}, which takes about two minutes after each takeover",
            f"run spiffctl where the backend's venv is, or set {START}=script to say that this is meant",
        )
    if mode.warm:
        # Whether the backend's entry points import is only known when the warm child runs.
        return ok(NAME, f"{mode.why}; if its imports fail, the script runs instead (said in the log)")
    return ok(NAME, mode.why)
