"""The Background lease: where it lives (Redis or the database), who holds it, can the store keep it."""

from __future__ import annotations

from spiffctl.doctor.checks.database import unreachable_hint
from spiffctl.doctor.engine import Context, Result, fail, ok, warn
from spiffctl.lease.config import LOCK, LOCK_URL, LeaseConfig, lease_config, why_database
from spiffctl.lease.stores import StoreOutage, StoreRefusal, open_store
from spiffctl.lease.timing import Timings
from spiffctl.roles import STOP_GRACE
from spiffctl.util.errors import ConfigError

NAME = "background lease"
POLICY = "lease redis policy"


def where(ctx: Context) -> str:
    try:
        config = lease_config(ctx.settings)
    except ConfigError:
        return "lease"
    return f"lease in {config.store} at {config.display}"


def check(ctx: Context) -> list[Result]:
    try:
        config = lease_config(ctx.settings)
    except ConfigError as e:
        return [fail(NAME, e.message, "fix the SPIFFCTL_LOCK* variables as the message says")]
    if not config.enabled:
        return [
            warn(
                NAME,
                f"{LOCK}=off: the Background runs without a lease",
                "run exactly one Background replica, or unset it (the lease lives in Redis or in the database)",
            )
        ]
    if config.url is None:
        return [
            fail(
                NAME,
                "no Redis and no usable database to keep the lease in: run --role background refuses to start",
                f"fix the database settings (see the database check), or set {LOCK_URL}",
            )
        ]
    return _inspect(ctx, config)


def _inspect(ctx: Context, config: LeaseConfig) -> list[Result]:
    store = open_store(config, Timings(config.ttl, STOP_GRACE), timeout=ctx.budget())
    try:
        holder = store.current_holder()
        problem = store.refusal()
    except (StoreOutage, StoreRefusal) as e:
        return [
            fail(
                NAME,
                f"{config.store} {config.display}: {e}",
                unreachable_hint(str(e), isinstance(e, StoreRefusal), config.store, config.source),
            )
        ]
    finally:
        store.close()
    if config.database is not None:
        at = f"in {config.store} at {config.display} ({why_database(ctx.settings)}), TTL {config.ttl:g} s"
    else:
        at = f"key {config.key} in Redis at {config.display}, TTL {config.ttl:g} s"
    if holder is None:
        results = [warn(NAME, f"nobody holds it ({at})", "start `spiffctl run --role background` (two for a standby)")]
    elif config.database is not None and config.database.kind == "sqlite":
        results = [ok(NAME, f"held by {holder.describe()} ({at})")]
    else:
        results = [ok(NAME, f"held by {holder.describe()}, {holder.ttl_left:.1f} s left ({at})")]
    if config.database is not None:
        return results
    if problem:
        results.append(fail(POLICY, problem, "set maxmemory-policy noeviction on that Redis"))
    else:
        results.append(ok(POLICY, "this Redis never evicts keys"))
    return results
