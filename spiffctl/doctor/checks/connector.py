"""The connector proxy's liveness: a warning only, since only service tasks need it."""

from __future__ import annotations

from spiffctl import probes
from spiffctl.config.settings import CONNECTOR_PROXY_URL, Endpoint
from spiffctl.doctor.engine import Context, Result, ok, skip, warn
from spiffctl.util.redact import redact_url

NAME = "connector proxy"
DEFAULT_URL = "http://localhost:7004"  # the backend's own default (config/default.py)


def liveness_url(ctx: Context) -> str:
    base = ctx.settings.env.get(CONNECTOR_PROXY_URL) or DEFAULT_URL
    return redact_url(base.rstrip("/") + "/liveness")


def check(ctx: Context) -> Result:
    url = (ctx.settings.env.get(CONNECTOR_PROXY_URL) or DEFAULT_URL).rstrip("/") + "/liveness"
    source = "" if ctx.settings.env.get(CONNECTOR_PROXY_URL) else " (the backend's default)"
    if any(p.variable == CONNECTOR_PROXY_URL for p in ctx.settings.problems):
        return skip(NAME, f"not checked: {CONNECTOR_PROXY_URL} is malformed (see configuration)")
    outcome = probes.check(Endpoint(None, "http", url, CONNECTOR_PROXY_URL), ctx.budget())
    if outcome.ok:
        return ok(NAME, f"{redact_url(url)}{source}: {outcome.detail}")
    return warn(
        NAME,
        f"{redact_url(url)}{source}: {outcome.detail}",
        f"start the connector proxy or set {CONNECTOR_PROXY_URL}; service tasks fail without it",
    )
