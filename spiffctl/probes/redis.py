"""Redis (``redis://``, ``rediss://``, password and db number from the URL): PING.

Also the one fail-fast Redis client and the one reading of redis-py's errors; the lease's Redis
store (:mod:`spiffctl.lease.stores.redis`) uses both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spiffctl.config.settings import Endpoint
from spiffctl.probes import Outcome, classify_exception, classify_text, ok, permanent, transient

if TYPE_CHECKING:
    import redis

# Error replies from a server that cannot serve writes *now*: redis-py has classes for failing
# over (READONLY, MASTERDOWN), cluster not ready (CLUSTERDOWN, TRYAGAIN) and memory full under
# noeviction (OOM); these two it leaves as text: snapshots failing, a script running too long.
BUSY = ("MISCONF", "BUSY")
# Error replies meaning "not on this server, ever": a db number it does not have, commands it does
# not offer (scripting disabled or renamed). Cluster redirects (MOVED, ASK, CROSSSLOT) have classes.
REFUSED = ("db index is out of range", "unknown command")


def client(url: str, timeout: float) -> redis.Redis:
    """A client whose every call gives up after ``timeout``: one attempt, no backoff, str replies.

    redis-py retries connection errors with exponential backoff by default, which would stretch
    one lease renewal far past its deadline and one probe past its budget.
    """
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
        decode_responses=True,
    )


def failure(e: BaseException) -> Outcome | None:
    """What a failed Redis call means: transient (no answer, or the server is busy or failing over),
    permanent (it refused us), or None when ``e`` is no Redis or network failure at all: a bug.
    """
    import redis.exceptions as rx

    if isinstance(e, (rx.AuthenticationError, rx.AuthenticationWrongNumberOfArgsError)):
        return permanent(f"authentication failed: {e}")
    if isinstance(e, (rx.AuthorizationError, rx.NoPermissionError)):
        return permanent(f"not allowed: {e}")
    if isinstance(e, rx.BusyLoadingError):
        return transient("loading its dataset")
    if isinstance(e, (rx.ConnectionError, rx.TimeoutError)):
        return classify_text(str(e))  # the socket error in words; TLS verification failures are refusals
    if isinstance(e, OSError):
        return classify_exception(e)
    if isinstance(e, rx.ResponseError):
        text = str(e)
        if isinstance(e, (rx.ReadOnlyError, rx.ClusterDownError, rx.TryAgainError, rx.OutOfMemoryError)):
            return transient(f"{type(e).__name__}: {text}")
        if text.split(" ", 1)[0] in BUSY:
            return transient(text)
        if isinstance(e, (rx.AskError, rx.ClusterCrossSlotError)):
            return permanent(f"a Redis Cluster redirect ({text}): point the URL at one plain Redis node")
        if any(m in text.lower() for m in REFUSED):
            return permanent(text)
        return None  # an error reply nobody foresaw: our command or script is wrong
    if isinstance(e, rx.InvalidResponse):
        return permanent(f"not a Redis server? ({e})")
    return None


def classify(e: BaseException) -> Outcome:
    return failure(e) or permanent(f"{type(e).__name__}: {e}")


def check(endpoint: Endpoint, timeout: float) -> Outcome:
    try:
        c = client(endpoint.url, timeout)
        try:
            c.ping()
        finally:
            c.close()
    except Exception as e:
        return classify(e)
    return ok("PING answered")
