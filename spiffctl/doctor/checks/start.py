"""How the Background's scheduler starts under the lease: a warm child or the stock script, and why."""

from __future__ import annotations

from spiffctl.doctor.engine import Context, Result, fail, ok
from spiffctl.lease.start import START, start_mode
from spiffctl.util.errors import ConfigError

NAME = "background start"


def check(ctx: Context) -> Result:
    try:
        mode = start_mode(ctx.settings.env, ctx.settings.backend_dir)
    except ConfigError as e:
        return fail(NAME, e.message, f"unset {START} (warm) or set it to script")
    if mode.fallback:
        # Not a fault: the scheduler still runs, later. A warning would flag every host without the
        # backend's venv (doctor run from elsewhere), where the image always has one.
        return ok(NAME, f"{mode.why}, which takes about two minutes after each takeover")
    if mode.warm:
        # Whether the backend's entry points import is only known when the warm child runs.
        return ok(NAME, f"{mode.why}; if its imports fail, the script runs instead (said in the log)")
    return ok(NAME, mode.why)
