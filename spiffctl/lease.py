"""The Redis lease that lets exactly one Background run: acquire, renew, release. Nothing else.

Keys (``K`` is ``SPIFFCTL_LOCK_KEY``; all in one Redis database, no cluster hash tags needed
because a Background lease never spans shards):

* ``K``            the lease itself: value = token, expiry = TTL. Present means "someone holds it".
* ``K:holder``     hash describing the most recent acquisition: token, host, pid, since (wall
                   seconds), epoch, run_id. No expiry: it must outlive the lease so the *next*
                   holder can tell how the previous lease ended.
* ``K:epoch``      counter, ``INCR`` once per acquisition; the child sees it as
                   ``SPIFFCTL_LEASE_EPOCH``. It restarts at 1 if Redis loses its data.
* ``K:released``   tombstone written by a clean release: value = the released epoch, short expiry.

Time. The holder reads :func:`now` into ``t0`` *before* sending an acquire or renew. Redis
starts its own expiry when the command arrives, i.e. after ``t0``, so the lease is certainly still
held in Redis until ``t0 + ttl`` as far as the holder's clock can tell; allowing for clock rate
drift (``DRIFT``) and the time it takes to kill a process group (:func:`margin`), the holder treats
the lease as valid until ``t0 + ttl * (1 - DRIFT) - margin(ttl)`` and never measures from the
reply, which may arrive arbitrarily late.

Knowing the previous lease ended. The key can vanish while its holder still runs its child: Redis
restarted without persistence, or failed over to a replica that never saw the key. A new holder
starts its child at once only with proof that the previous lease ended:

* a tombstone for the previous epoch (its holder released it after its child had exited); or
* the previous acquisition was recorded by *this same Redis process* (same ``run_id``, read on the
  same connection as the acquire, which a restart would have broken): the key then disappeared
  by expiry, which only happens after the old holder's local validity ended.

Otherwise (no record at all, or a record from another ``run_id``) the new holder keeps renewing
but waits one TTL before starting its child: by then any holder that had the key has passed its
own local deadline and fenced its child.

Eviction. A Redis with an evicting ``maxmemory-policy`` may drop the key under memory pressure
(``volatile-*`` policies especially, because the key has a TTL), which breaks every guarantee
above; :func:`eviction_problem` detects it so the caller can refuse to run.

Limits: a Redis restored from an *older* snapshot can resurrect an old tombstone or record; the
run_id changes on restart, so only the tombstone path is affected, and the tombstone's short
expiry keeps that window small. A proxy in front of Redis (twemproxy, envoy) hides restarts.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis

    from spiffctl.lockconfig import LockConfig

DRIFT = 0.01  # clock rate difference tolerated between this host and Redis (redlock uses 1%)
EVICTING_PREFIXES = ("allkeys-", "volatile-")

Clock = Callable[[], float]


def now() -> float:
    """The clock every lease deadline is kept on, shared by all processes of the host.

    ``CLOCK_BOOTTIME`` where it exists (Linux): like ``CLOCK_MONOTONIC`` it never jumps with the
    wall clock, but it also counts time the host spent suspended, during which Redis (elsewhere)
    kept expiring keys. :mod:`spiffctl.watchdog` has the same function (it imports nothing of ours).
    """
    return time.clock_gettime(_CLOCK)


_CLOCK = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


def margin(ttl: float) -> float:
    """Seconds kept between the local deadline and the lease's earliest expiry in Redis.

    Covers the watchdog's timer slack and the time SIGKILL takes to empty a process group.
    """
    return max(0.2, 0.02 * ttl)


def tombstone_ttl(ttl: float) -> float:
    """How long a clean release stays provable: long enough for any standby to poll it."""
    return max(30.0, 4 * ttl)


# KEYS[1] lease, KEYS[2] holder record, KEYS[3] epoch counter, KEYS[4] tombstone
# ARGV[1] token, ARGV[2] ttl ms, ARGV[3] host, ARGV[4] pid, ARGV[5] since, ARGV[6] run_id
# Not acquired: {0, current token, pttl ms, holder token, host, pid, since, epoch}
# Acquired:     {1, new epoch, previous epoch, previous run_id, released epoch} ('' = none)
# SET NX PX is the acquisition; the rest only records who holds it, atomically with it, and
# reads the previous record before overwriting it so the caller can judge how that lease ended.
LUA_ACQUIRE = """
if not redis.call('set', KEYS[1], ARGV[1], 'nx', 'px', ARGV[2]) then
    local h = redis.call('hmget', KEYS[2], 'token', 'host', 'pid', 'since', 'epoch')
    return {0, redis.call('get', KEYS[1]) or '', redis.call('pttl', KEYS[1]),
            h[1] or '', h[2] or '', h[3] or '', h[4] or '', h[5] or ''}
end
local prev = redis.call('hmget', KEYS[2], 'epoch', 'run_id')
local released = redis.call('get', KEYS[4]) or ''
local epoch = redis.call('incr', KEYS[3])
redis.call('del', KEYS[2], KEYS[4])
redis.call('hset', KEYS[2], 'token', ARGV[1], 'host', ARGV[3], 'pid', ARGV[4], 'since', ARGV[5],
           'epoch', epoch, 'run_id', ARGV[6])
return {1, epoch, prev[1] or '', prev[2] or '', released}
"""

# KEYS[1] lease, KEYS[2] holder record; ARGV[1] token, ARGV[2] ttl ms, ARGV[3] run_id
# 1: renewed. 0: the key is gone. -1: someone else holds it (our key had expired).
# PEXPIRE resets the full TTL (it does not add to what is left), as redis-py's reacquire does.
# The run_id stamp keeps the record naming the Redis process that last saw the lease alive.
LUA_RENEW = """
local token = redis.call('get', KEYS[1])
if not token then
    return 0
end
if token ~= ARGV[1] then
    return -1
end
redis.call('pexpire', KEYS[1], ARGV[2])
if ARGV[3] ~= '' and redis.call('hget', KEYS[2], 'token') == ARGV[1] then
    redis.call('hset', KEYS[2], 'run_id', ARGV[3])
end
return 1
"""

# KEYS[1] lease, KEYS[2] tombstone; ARGV[1] token, ARGV[2] epoch, ARGV[3] tombstone ttl ms
# 1: released (and the tombstone proves it). 0: not ours any more; nothing touched.
LUA_RELEASE = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then
    return 0
end
redis.call('del', KEYS[1])
redis.call('set', KEYS[2], ARGV[2], 'px', ARGV[3])
return 1
"""


class LeaseLost(Exception):
    """Renewal found the lease gone or taken; ``str(e)`` says which and what it means."""


@dataclass(frozen=True)
class Holder:
    """Who holds the lease now, as recorded at acquisition (``epoch`` 0 when no record matches)."""

    host: str
    pid: int
    since: float | None  # wall-clock seconds
    epoch: int
    ttl_left: float  # seconds until Redis expires the key unless renewed

    def describe(self) -> str:
        since = f" since {format_wall(self.since)}" if self.since else ""
        epoch = f", epoch {self.epoch}" if self.epoch else ""
        return f"{self.host} pid {self.pid}{since}{epoch}"


@dataclass(frozen=True)
class Grant:
    """A successful acquisition."""

    epoch: int
    valid_until: float  # on now(); the child must be dead by then unless a renewal succeeds
    proven: bool  # the previous lease certainly ended: the child may start at once
    why: str  # how we know (or why we do not), for the log


def format_wall(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


def client(url: str, timeout: float) -> redis.Redis:
    """A client whose every call gives up after ``timeout``: no retries, no backoff.

    redis-py retries connection errors three times with exponential backoff by default, which
    would stretch one renewal attempt far past the lease's deadline.
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


def new_token(host: str, pid: int) -> str:
    """Random (so a restarted pid never matches) + host + pid (so a reader can tell who holds it)."""
    return f"{secrets.token_hex(8)}:{host}:{pid}"


def _holder_from_token(token: str, ttl_left: float) -> Holder:
    _, _, rest = token.partition(":")
    host, _, pid = rest.rpartition(":")
    return Holder(host=host or "?", pid=int(pid) if pid.isdigit() else 0, since=None, epoch=0, ttl_left=ttl_left)


def _holder(token: str, pttl: int, host: str, pid: str, since: str, epoch: str, record_token: str) -> Holder:
    ttl_left = max(pttl, 0) / 1000
    if record_token != token:
        # The record belongs to someone else (data restored from a snapshot, hand edits): trust
        # only the token, which is the lease itself.
        return _holder_from_token(token, ttl_left)
    return Holder(
        host=host,
        pid=int(pid) if pid.isdigit() else 0,
        since=float(since) if since else None,
        epoch=int(epoch) if epoch.isdigit() else 0,
        ttl_left=ttl_left,
    )


class Lease:
    """One process's claim on ``key``. Not thread-safe; one renewer drives it.

    Redis errors (:mod:`redis.exceptions`) propagate: the caller decides how long to keep trying,
    because only it knows the local deadline.
    """

    def __init__(
        self,
        conn: redis.Redis,
        key: str,
        ttl: float,
        *,
        host: str | None = None,
        pid: int | None = None,
        clock: Clock = now,
    ) -> None:
        self.conn = conn
        self.key = key
        self.ttl = ttl
        self.host = host or socket.gethostname()
        self.pid = pid or os.getpid()
        self.token = new_token(self.host, self.pid)
        self.clock = clock
        self.epoch = 0
        self.valid_until = 0.0
        self._run_id = ""  # the Redis process that served our last command
        self._acquire = conn.register_script(LUA_ACQUIRE)
        self._renew = conn.register_script(LUA_RENEW)
        self._release = conn.register_script(LUA_RELEASE)

    @property
    def keys(self) -> tuple[str, str, str, str]:
        return (self.key, f"{self.key}:holder", f"{self.key}:epoch", f"{self.key}:released")

    @property
    def ttl_ms(self) -> int:
        return int(self.ttl * 1000)

    def deadline(self, t0: float) -> float:
        return t0 + self.ttl * (1 - DRIFT) - margin(self.ttl)

    def _with_run_id(self, script: Any, keys: list[str], args: list[Any]) -> tuple[Any, str]:
        """Run ``script`` pipelined after ``INFO server`` on one connection.

        Both replies come from the same Redis process (a restart closes the connection), so the
        run_id returned is the one of the process that executed the script.
        """
        pipe = self.conn.pipeline(transaction=False)
        pipe.info("server")
        script(keys=keys, args=args, client=pipe)
        info, reply = pipe.execute()
        return reply, str(info.get("run_id", ""))

    def try_acquire(self) -> Grant | Holder:
        """Take the lease if it is free: a :class:`Grant`, or the current :class:`Holder`."""
        if not self._run_id:
            self._run_id = str(self.conn.info("server").get("run_id", ""))
        self.token = new_token(self.host, self.pid)  # a fresh token per acquisition
        t0 = self.clock()
        reply, run_id = self._with_run_id(
            self._acquire,
            list(self.keys),
            [self.token, self.ttl_ms, self.host, self.pid, repr(time.time()), self._run_id],
        )
        if int(reply[0]) == 0:
            token, pttl, record_token, host, pid, since, epoch = (str(x) for x in reply[1:])
            self._run_id = run_id
            return _holder(token, int(pttl), host, pid, since, epoch, record_token)
        epoch, prev_epoch, prev_run_id, released = int(reply[1]), str(reply[2]), str(reply[3]), str(reply[4])
        self.epoch = epoch
        self.valid_until = self.deadline(t0)
        if run_id != self._run_id:
            # Our record names a Redis process that did not serve the acquire: correct it now,
            # or the next holder would wait a TTL for nothing.
            self._run_id = run_id
            self.renew()
        proven, why = _judge(prev_epoch, prev_run_id, released, run_id)
        return Grant(epoch=epoch, valid_until=self.valid_until, proven=proven, why=why)

    def renew(self) -> float:
        """Reset the key's TTL; the new local deadline, or :class:`LeaseLost`."""
        t0 = self.clock()
        reply, run_id = self._with_run_id(self._renew, list(self.keys[:2]), [self.token, self.ttl_ms, self._run_id])
        result = int(reply)
        restarted = bool(self._run_id) and run_id != self._run_id
        if result <= 0:
            self._run_id = run_id
        if result == 0:
            raise LeaseLost(
                "Redis restarted (new run_id) and the lease key vanished with its data"
                if restarted
                else "the lease key vanished from Redis (Redis restarted without persistence, failed over, "
                "or the key was deleted)"
            )
        if result < 0:
            holder = current_holder_on(self.conn, self.key)
            who = holder.describe() if holder else "another replica"
            cause = "Redis restarted (new run_id) and lost our key" if restarted else "our key expired in Redis"
            raise LeaseLost(f"{cause}; the lease is now held by {who}")
        self.valid_until = self.deadline(t0)
        if run_id != self._run_id:
            self._run_id = run_id
            return self.renew()  # stamps the new run_id into the record
        return self.valid_until

    def release(self) -> bool:
        """Delete the key and leave a tombstone, if it is still ours. Call only once the child is dead."""
        released = int(
            self._release(
                keys=[self.key, self.keys[3]],
                args=[self.token, self.epoch, int(tombstone_ttl(self.ttl) * 1000)],
            )
        )
        self.valid_until = 0.0
        return released == 1


def _judge(prev_epoch: str, prev_run_id: str, released: str, run_id: str) -> tuple[bool, str]:
    if not prev_epoch:
        return False, "no record of a previous lease in this Redis (first use, or Redis lost its data)"
    if released == prev_epoch:
        return True, f"epoch {prev_epoch} was released cleanly"
    if prev_run_id and prev_run_id == run_id:
        return True, f"epoch {prev_epoch} expired in this same Redis process"
    return False, f"epoch {prev_epoch} was recorded by an earlier Redis process (Redis restarted since)"


def current_holder_on(conn: redis.Redis, key: str) -> Holder | None:
    pipe = conn.pipeline(transaction=False)
    pipe.get(key)
    pipe.pttl(key)
    pipe.hmget(f"{key}:holder", "token", "host", "pid", "since", "epoch")
    token, pttl, record = pipe.execute()
    if token is None:
        return None
    record_token, host, pid, since, epoch = (str(x or "") for x in record)
    return _holder(str(token), int(pttl), host, pid, since, epoch, record_token)


def current_holder(config: LockConfig, timeout: float) -> Holder | None:
    """Who holds the Background lease now (read-only, for ``doctor``); ``None`` when nobody does.

    Raises :mod:`redis.exceptions` errors; ``config.url`` must be set.
    """
    assert config.url is not None
    conn = client(config.url, timeout)
    try:
        return current_holder_on(conn, config.key)
    finally:
        conn.close()


def eviction_problem(conn: redis.Redis) -> str | None:
    """Why this Redis may evict the lease key, with the fix; ``None`` when it never evicts.

    Reads ``INFO memory`` rather than ``CONFIG GET``, which managed Redis services often disable.
    Any evicting policy is refused even with ``maxmemory 0``: both can change at runtime.
    """
    policy = str(conn.info("memory").get("maxmemory_policy", "noeviction"))
    if not policy.startswith(EVICTING_PREFIXES):
        return None
    return (
        f"Redis has maxmemory-policy {policy}, which can evict the lease key and let two Background "
        "schedulers run; set maxmemory-policy noeviction on that Redis (CONFIG SET maxmemory-policy "
        "noeviction, and in its config file) or point SPIFFCTL_LOCK_URL at a Redis that does not evict"
    )
