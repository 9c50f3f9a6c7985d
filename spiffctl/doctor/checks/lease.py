"""The Background lease: is there a Redis for it, who holds it, and can that Redis keep it."""

from __future__ import annotations

from spiffctl.doctor.engine import Context, Result, fail, ok, warn
from spiffctl.errors import ConfigError
from spiffctl.lease.config import LOCK, LOCK_URL, LockConfig, lock_config, no_redis
from spiffctl.roles import ALL

NAME = "background lease"
POLICY = "lease redis policy"


def where(ctx: Context) -> str:
    try:
        return f"lease at {lock_config(ctx.settings).display}"
    except ConfigError:
        return "lease"


def check(ctx: Context) -> list[Result]:
    try:
        config = lock_config(ctx.settings)
    except ConfigError as e:
        return [fail(NAME, e.message, "fix the SPIFFCTL_LOCK* variables as the message says")]
    if not config.enabled:
        return [
            warn(
                NAME,
                f"{LOCK}=off: the Background runs without a lease",
                "run exactly one Background replica, or configure Redis for the lease and unset it",
            )
        ]
    if config.url is None:
        if ctx.role == ALL:
            return [
                warn(
                    NAME,
                    f"{no_redis(ctx.settings)}: run --role all runs the Background without a lease on this box",
                    f"run exactly one all-in-one container per database, or set {LOCK_URL}",
                )
            ]
        return [
            fail(
                NAME,
                f"{no_redis(ctx.settings)}: run --role background refuses to start (exit 78)",
                f"set {LOCK_URL}=redis://host:6379/0, or {LOCK}=off if exactly one Background replica runs",
            )
        ]
    return _inspect(ctx, config)


def _inspect(ctx: Context, config: LockConfig) -> list[Result]:
    from spiffctl.lease.redis_store import RedisStore
    from spiffctl.lease.store import StoreOutage, StoreRefusal

    assert config.url is not None
    store = RedisStore.from_url(config.url, config.key, config.ttl, timeout=ctx.budget())
    try:
        holder = store.current_holder()
        eviction = store.refusal()
    except (StoreOutage, StoreRefusal) as e:
        return [fail(NAME, f"{config.display}: {e}", f"check that Redis runs and {config.source} points at it")]
    finally:
        store.close()
    at = f"key {config.key} at {config.display}, TTL {config.ttl:g} s"
    if holder is None:
        results = [warn(NAME, f"nobody holds it ({at})", "start `spiffctl run --role background` (two for a standby)")]
    else:
        results = [ok(NAME, f"held by {holder.describe()}, {holder.ttl_left:.1f} s left ({at})")]
    if eviction:
        results.append(fail(POLICY, eviction, "set maxmemory-policy noeviction on that Redis"))
    else:
        results.append(ok(POLICY, "this Redis never evicts keys"))
    return results
