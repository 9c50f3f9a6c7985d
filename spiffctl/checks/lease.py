"""The Background lease: is there a Redis for it, who holds it, and can that Redis keep it."""

from __future__ import annotations

from spiffctl.doctor import Context, Result, fail, ok, warn
from spiffctl.errors import ConfigError
from spiffctl.lockconfig import LOCK, LOCK_URL, LockConfig, lock_config
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
                    "no Redis configured: run --role all runs the Background without a lease on this box",
                    f"run exactly one all-in-one container per database, or set {LOCK_URL}",
                )
            ]
        return [
            fail(
                NAME,
                "no Redis configured: run --role background refuses to start (exit 78)",
                f"set {LOCK_URL}=redis://host:6379/0, or {LOCK}=off if exactly one Background replica runs",
            )
        ]
    return _inspect(ctx, config)


def _inspect(ctx: Context, config: LockConfig) -> list[Result]:
    from spiffctl import lease
    from spiffctl.probes import redis as redis_probe

    conn = lease.client(config.url or "", ctx.budget())
    try:
        holder = lease.current_holder_on(conn, config.key)
        eviction = lease.eviction_problem(conn)
    except Exception as e:
        detail = redis_probe.classify(e).detail
        return [fail(NAME, f"{config.display}: {detail}", f"check that Redis runs and {config.source} points at it")]
    finally:
        conn.close()
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
