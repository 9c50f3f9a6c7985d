"""Celery's broker and result backend: reachable and authenticated (only when Celery is enabled)."""

from __future__ import annotations

from spiffctl import probes
from spiffctl.config.settings import RESULT_BACKEND
from spiffctl.doctor.engine import Context, Result, fail, ok, skip
from spiffctl.probes import Status
from spiffctl.roles import CELERY_ENABLED, Need
from spiffctl.util.redact import redact_url
from spiffctl.wait import describe


def broker(ctx: Context) -> Result:
    return _endpoint(ctx, Need.BROKER, "broker")


def result_backend(ctx: Context) -> Result:
    name = "result backend"
    if ctx.settings.celery_enabled and ctx.settings.endpoint(Need.RESULT_BACKEND) is None:
        url = ctx.settings.env.get(RESULT_BACKEND)
        if not url:
            return skip(name, f"{RESULT_BACKEND} is not set (optional: the backend ignores task results)")
        if not any(p.variable == RESULT_BACKEND for p in ctx.settings.problems):
            return skip(name, f"{redact_url(url)} is not checked by spiffctl (rpc:// uses the broker; s3:// needs AWS)")
    return _endpoint(ctx, Need.RESULT_BACKEND, name)


def _endpoint(ctx: Context, need: Need, name: str) -> Result:
    if not ctx.settings.celery_enabled:
        return skip(name, f"Celery is disabled ({CELERY_ENABLED} is not true)")
    endpoint = ctx.settings.endpoint(need)
    if endpoint is None:
        return skip(name, f"not checked: the {need.value} settings have errors (see configuration)")
    outcome = probes.check(endpoint, ctx.budget())
    where = describe(endpoint)
    if outcome.ok:
        return ok(name, f"{where}: {outcome.detail}")
    if outcome.status is Status.PERMANENT:
        hint = f"fix the user, password or TLS settings in {endpoint.variable}"
    else:
        hint = f"check that it runs and that {endpoint.variable} points at it"
    return fail(name, f"{where}: {outcome.detail}", hint)
