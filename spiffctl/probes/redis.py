"""Redis (``redis://``, ``rediss://``, password and db number from the URL): PING."""

from __future__ import annotations

from spiffctl.probes import TLS_FAILURE, Outcome, classify_text, ok, permanent, transient
from spiffctl.settings import Endpoint

PERMANENT = ("wrongpass", "noauth", "invalid password", "invalid username", "db index is out of range", *TLS_FAILURE)
TRANSIENT = ("loading", "connection refused", "timeout", "timed out", "name or service not known", "try again")


def client(url: str, timeout: float) -> object:
    """A client that fails fast: one attempt, bounded connect and reply times."""
    import redis

    return redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry_on_timeout=False,
        health_check_interval=0,
    )


def classify(e: BaseException) -> Outcome:
    import redis.exceptions as rx

    if isinstance(e, (rx.AuthenticationError, rx.AuthorizationError)):
        return permanent(f"authentication failed: {e}")
    if isinstance(e, rx.BusyLoadingError):
        return transient("loading its dataset")
    return classify_text(str(e), PERMANENT, TRANSIENT)


def check(endpoint: Endpoint, timeout: float) -> Outcome:
    try:
        c = client(endpoint.url, timeout)
        try:
            c.ping()  # type: ignore[attr-defined]
        finally:
            c.close()  # type: ignore[attr-defined]
    except Exception as e:
        return classify(e)
    return ok("PING answered")
