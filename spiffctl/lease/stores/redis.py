"""The lease in Redis: a :class:`~spiffctl.lease.stores.Store` (acquire, renew, release). Nothing else.

Keys (``K`` is ``SPIFFCTL_LOCK_KEY``; all in one Redis database, no cluster hash tags needed
because a Background lease never spans shards):

* ``K``            the lease itself: value = token, expiry = TTL. Present means "someone holds it".
* ``K:holder``     hash describing the most recent acquisition: token, host, pid, since (wall
                   seconds), epoch, run_id, expires (when the key expires, in milliseconds on
                   Redis's own clock, rewritten at every renewal and at release). No expiry: it must
                   outlive the lease so the *next* holder can tell how the previous lease ended.
* ``K:epoch``      counter, ``INCR`` once per acquisition, never below the record's epoch + 1; the
                   child sees it as ``SPIFFCTL_LEASE_EPOCH``. It restarts at 1 if Redis loses its data.
* ``K:released``   tombstone written by a clean release: value = the released epoch, short expiry.

Time: :func:`spiffctl.lease.timing.local_deadline` of a clock read *before* the request is sent.
The scripts set the key's expiry with ``PEXPIREAT`` from Redis ``TIME`` and record the same
instant, so the record says exactly when the key would expire if nobody touched it.

Knowing the previous lease ended. The key can vanish while its holder still runs its child: Redis
restarted without persistence, failed over to a replica that never saw the key, or a hand
(``DEL``, ``SET K x PX 50``, ``PEXPIRE K 1``, a cleanup script) removed or replaced it. A new
holder starts its child at once only with proof that the previous lease ended:

* a tombstone for the previous epoch (its holder released it after its child had exited); or
* the previous record was written by *this same Redis process* (same ``run_id``, read on the same
  connection as the acquire, which a restart would have broken) **and** Redis's clock, read in the
  acquiring script, is at or past the record's ``expires``: the old holder's local deadline (which
  counts from before its last renewal was sent) has surely passed, whatever happened to the key.

Otherwise (no record, a record from another ``run_id`` or without ``expires``, or a key gone before
its recorded expiry) the grant says it is not proven and the runner keeps renewing but waits one
TTL before starting its child: by then any holder that had the key has passed its own local
deadline and fenced its child.

A holder fences at once when a renewal finds its key gone or someone else's, or its holder record
deleted or rewritten (then the record can no longer prove anything to the next holder).

Eviction. A Redis with an evicting ``maxmemory-policy`` may drop the key under memory pressure
(``volatile-*`` policies especially, because the key has a TTL), which breaks every guarantee
above; :meth:`RedisStore.refusal` says so, and the runner refuses to run.

Errors. redis-py's and the socket's failures become :class:`~spiffctl.lease.stores.StoreOutage` or
:class:`~spiffctl.lease.stores.StoreRefusal` as :func:`spiffctl.probes.redis.failure` reads them;
anything else (a ``TypeError``, an error reply from a wrong script) propagates: it is a bug.

Limits: a Redis restored from an *older* snapshot can resurrect an old tombstone or record; the
run_id changes on restart, so only the tombstone path is affected, and the tombstone's short
expiry keeps that window small. A proxy in front of Redis (twemproxy, envoy) hides restarts.
``expires`` is on Redis's wall clock, as Redis's own key expiry is: a step forward of that clock
shortens every TTL in that Redis (a step back only makes a grant unproven). A hand that forges
the record itself (an ``expires`` in the past) or the tombstone can still fool the proof.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from spiffctl.lease import clock
from spiffctl.lease.stores import Grant, Holder, LeaseLost, StoreOutage, StoreRefusal, released_cleanly
from spiffctl.lease.timing import local_deadline
from spiffctl.probes import Status
from spiffctl.probes import redis as probe
from spiffctl.util.redact import redact_url

if TYPE_CHECKING:
    import redis

EVICTING_PREFIXES = ("allkeys-", "volatile-")

Clock = Callable[[], float]


def tombstone_ttl(ttl: float) -> float:
    """How long a clean release stays provable: long enough for any standby to poll it."""
    return max(30.0, 4 * ttl)


# Redis's clock in whole milliseconds (TIME is allowed in scripts since 5.0's effects replication).
LUA_NOW = """
local function now_ms()
    local t = redis.call('time')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# KEYS[1] lease, KEYS[2] holder record, KEYS[3] epoch counter, KEYS[4] tombstone
# ARGV[1] token, ARGV[2] ttl ms, ARGV[3] host, ARGV[4] pid, ARGV[5] since, ARGV[6] run_id
# Not acquired: {0, current token, pttl ms, holder token, host, pid, since, epoch}
# Acquired:     {1, new epoch, previous epoch, previous run_id, released epoch, previous expires, now}
#               ('' = none)
# SET NX is the acquisition; the rest only records who holds it and until when, atomically with
# it, and reads the previous record before overwriting it so the caller can judge how that lease
# ended. The epoch never falls back even if a hand deleted the counter.
LUA_ACQUIRE = (
    LUA_NOW
    + """
if not redis.call('set', KEYS[1], ARGV[1], 'nx', 'px', ARGV[2]) then
    local h = redis.call('hmget', KEYS[2], 'token', 'host', 'pid', 'since', 'epoch')
    return {0, redis.call('get', KEYS[1]) or '', redis.call('pttl', KEYS[1]),
            h[1] or '', h[2] or '', h[3] or '', h[4] or '', h[5] or ''}
end
local now = now_ms()
local expires = now + tonumber(ARGV[2])
redis.call('pexpireat', KEYS[1], expires)
local prev = redis.call('hmget', KEYS[2], 'epoch', 'run_id', 'expires')
local released = redis.call('get', KEYS[4]) or ''
local epoch = redis.call('incr', KEYS[3])
local before = tonumber(prev[1])
if before and epoch <= before then
    epoch = before + 1
    redis.call('set', KEYS[3], epoch)
end
redis.call('del', KEYS[2], KEYS[4])
redis.call('hset', KEYS[2], 'token', ARGV[1], 'host', ARGV[3], 'pid', ARGV[4], 'since', ARGV[5],
           'epoch', epoch, 'run_id', ARGV[6], 'expires', expires)
return {1, epoch, prev[1] or '', prev[2] or '', released, prev[3] or '', now}
"""
)

# KEYS[1] lease, KEYS[2] holder record; ARGV[1] token, ARGV[2] ttl ms, ARGV[3] run_id
# 1: renewed. 0: the key is gone. -1: someone else holds it (our key expired or was overwritten).
# -2: the key is ours but our holder record is gone or someone else's (a hand): the next holder
# could not judge our end from it, so we give the lease up rather than renew it.
# PEXPIREAT resets the full TTL (it does not add to what is left), as redis-py's reacquire does.
# The run_id stamp keeps the record naming the Redis process that last saw the lease alive.
LUA_RENEW = (
    LUA_NOW
    + """
local token = redis.call('get', KEYS[1])
if not token then
    return 0
end
if token ~= ARGV[1] then
    return -1
end
if redis.call('hget', KEYS[2], 'token') ~= ARGV[1] then
    return -2
end
local expires = now_ms() + tonumber(ARGV[2])
redis.call('pexpireat', KEYS[1], expires)
redis.call('hset', KEYS[2], 'expires', expires)
if ARGV[3] ~= '' then
    redis.call('hset', KEYS[2], 'run_id', ARGV[3])
end
return 1
"""
)

# KEYS[1] lease, KEYS[2] tombstone, KEYS[3] holder record; ARGV[1] token, ARGV[2] epoch,
# ARGV[3] tombstone ttl ms
# 1: released (the tombstone proves it, and so does the record's expires, now in the past).
# 0: not ours any more; nothing touched.
LUA_RELEASE = (
    LUA_NOW
    + """
if redis.call('get', KEYS[1]) ~= ARGV[1] then
    return 0
end
redis.call('del', KEYS[1])
redis.call('set', KEYS[2], ARGV[2], 'px', ARGV[3])
if redis.call('hget', KEYS[3], 'token') == ARGV[1] then
    redis.call('hset', KEYS[3], 'expires', now_ms())
end
return 1
"""
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


@contextmanager
def _translated() -> Iterator[None]:
    """redis-py's and the socket's failures as the store's; anything else propagates: a bug."""
    try:
        yield
    except Exception as e:
        outcome = probe.failure(e)
        if outcome is None:
            raise
        if outcome.status is Status.PERMANENT:
            raise StoreRefusal(outcome.detail) from e
        raise StoreOutage(outcome.detail) from e


class RedisStore:
    """One process's claim on ``key`` in one Redis database. Not thread-safe; one runner drives it."""

    kind = "Redis"

    def __init__(
        self,
        conn: redis.Redis,
        key: str,
        ttl: float,
        *,
        where: str = "Redis",
        host: str | None = None,
        pid: int | None = None,
        now: Clock = clock.now,
    ) -> None:
        self.conn = conn
        self.key = key
        self.ttl = ttl
        self.where = where
        self.host = host or socket.gethostname()
        self.pid = pid or os.getpid()
        self.token = new_token(self.host, self.pid)
        self.now = now
        self.epoch = 0
        self._run_id = ""  # the Redis process that served our last command
        self._acquire = conn.register_script(LUA_ACQUIRE)
        self._renew = conn.register_script(LUA_RENEW)
        self._release = conn.register_script(LUA_RELEASE)

    @classmethod
    def from_url(
        cls, url: str, key: str, ttl: float, *, timeout: float, host: str | None = None, pid: int | None = None
    ) -> RedisStore:
        """A store on ``url`` whose every call gives up after ``timeout`` (no retries)."""
        return cls(probe.client(url, timeout), key, ttl, where=f"Redis {redact_url(url)}", host=host, pid=pid)

    @property
    def keys(self) -> tuple[str, str, str, str]:
        return (self.key, f"{self.key}:holder", f"{self.key}:epoch", f"{self.key}:released")

    @property
    def ttl_ms(self) -> int:
        return int(self.ttl * 1000)

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

    def refusal(self) -> str | None:
        """Why this Redis may evict the lease key, with the fix; ``None`` when it never evicts.

        Reads ``INFO memory`` rather than ``CONFIG GET``, which managed Redis services often
        disable. Any evicting policy is refused even with ``maxmemory 0``: both can change at runtime.
        """
        with _translated():
            policy = str(self.conn.info("memory").get("maxmemory_policy", "noeviction"))
        if not policy.startswith(EVICTING_PREFIXES):
            return None
        return (
            f"Redis has maxmemory-policy {policy}, which can evict the lease key and let two Background "
            "schedulers run; set maxmemory-policy noeviction on that Redis (CONFIG SET maxmemory-policy "
            "noeviction, and in its config file) or point SPIFFCTL_LOCK_URL at a Redis that does not evict"
        )

    def try_acquire(self) -> Grant | Holder:
        """Take the lease if it is free: a :class:`Grant`, or the current :class:`Holder`.

        ``LUA_ACQUIRE`` records ``self._run_id`` as the Redis process that granted the lease; when
        the process that served the acquire turns out to be another one (Redis restarted since our
        last command), a renewal stamps the right run_id at once, or the next holder would wait a
        TTL for nothing. If that renewal finds the key gone, Redis restarted again in between: an
        outage, retried at the next poll.
        """
        with _translated():
            if not self._run_id:
                self._run_id = str(self.conn.info("server").get("run_id", ""))
            self.token = new_token(self.host, self.pid)  # a fresh token per acquisition
            t0 = self.now()
            reply, run_id = self._with_run_id(
                self._acquire,
                list(self.keys),
                [self.token, self.ttl_ms, self.host, self.pid, repr(time.time()), self._run_id],
            )
        if int(reply[0]) == 0:
            token, pttl, record_token, host, pid, since, held_epoch = (str(x) for x in reply[1:])
            self._run_id = run_id
            return _holder(token, int(pttl), host, pid, since, held_epoch, record_token)
        epoch = int(reply[1])
        prev_epoch, prev_run_id, released, expires = (str(x) for x in reply[2:6])
        previous = Previous(prev_epoch, prev_run_id, released, expires, now_ms=int(reply[6]))
        self.epoch = epoch
        valid_until = local_deadline(t0, self.ttl)
        if run_id != self._run_id:
            self._run_id = run_id
            stamped = self.renew()
            if isinstance(stamped, LeaseLost):
                raise StoreOutage(f"Redis restarted while the lease was being acquired ({stamped.reason})")
            valid_until = stamped
        proven, why = previous.judge(run_id)
        return Grant(epoch=epoch, valid_until=valid_until, proven=proven, why=why)

    def renew(self) -> float | LeaseLost:
        """Reset the key's TTL (``LUA_RENEW``): the new local deadline, or why the lease is lost.

        A reply from another Redis process than the last one (``run_id`` changed) while the key is
        still ours means the key survived a restart (persistence, or a replica promoted with it):
        a second renewal stamps the new run_id into the record.
        """
        while True:
            with _translated():
                t0 = self.now()
                reply, run_id = self._with_run_id(
                    self._renew, list(self.keys[:2]), [self.token, self.ttl_ms, self._run_id]
                )
                result = int(reply)
                restarted = bool(self._run_id) and run_id != self._run_id
                if result <= 0:
                    self._run_id = run_id
                if result == 0:
                    return LeaseLost(
                        "Redis restarted (new run_id) and the lease key vanished with its data"
                        if restarted
                        else "the lease key vanished from Redis (Redis restarted without persistence, failed "
                        "over, or the key was deleted)"
                    )
                if result == -2:
                    return LeaseLost(
                        "our holder record in Redis was deleted or rewritten (by hand?): it can no longer "
                        "prove to the next holder when our lease ends, so the script is stopped"
                    )
                if result < 0:
                    holder = self.current_holder()
                    who = holder.describe() if holder else "another replica"
                    cause = (
                        "Redis restarted (new run_id) and lost our key"
                        if restarted
                        else "our key expired or was overwritten in Redis"
                    )
                    return LeaseLost(f"{cause}; the lease is now held by {who}")
            if run_id == self._run_id:
                return local_deadline(t0, self.ttl)
            self._run_id = run_id

    def release(self) -> bool:
        """Delete the key and leave a tombstone (``LUA_RELEASE``), if it is still ours.

        Call only once the child is gone: the tombstone tells the next holder it may start at once.
        """
        with _translated():
            released = self._release(
                keys=[self.key, self.keys[3], self.keys[1]],
                args=[self.token, self.epoch, int(tombstone_ttl(self.ttl) * 1000)],
            )
        return int(released) == 1

    def current_holder(self) -> Holder | None:
        with _translated():
            pipe = self.conn.pipeline(transaction=False)
            pipe.get(self.key)
            pipe.pttl(self.key)
            pipe.hmget(f"{self.key}:holder", "token", "host", "pid", "since", "epoch")
            token, pttl, record = pipe.execute()
        if token is None:
            return None
        record_token, host, pid, since, epoch = (str(x or "") for x in record)
        return _holder(str(token), int(pttl), host, pid, since, epoch, record_token)

    def close(self) -> None:
        self.conn.close()


@dataclass(frozen=True)
class Previous:
    """What the acquiring script found about the lease before ours (``''`` = nothing)."""

    epoch: str
    run_id: str  # the Redis process that last wrote the record
    released: str  # the tombstone: the epoch released cleanly
    expires: str  # when the key was due to expire, ms on Redis's clock
    now_ms: int  # Redis's clock when our key was set

    def judge(self, run_id: str) -> tuple[bool, str]:
        """Whether the previous holder's script is surely gone (see the module's doc), and why."""
        if not self.epoch:
            return False, "no record of a previous lease in this Redis (first use, Redis lost its data, or deleted)"
        if self.released == self.epoch:
            return True, released_cleanly(self.epoch)
        if not self.run_id or self.run_id != run_id:
            return False, f"epoch {self.epoch} was recorded by an earlier Redis process (Redis restarted since)"
        if not self.expires.isdigit():
            return False, f"the record of epoch {self.epoch} says nothing of when it expires"
        early = int(self.expires) - self.now_ms
        if early > 0:
            return False, (
                f"the key of epoch {self.epoch} vanished {early / 1000:.3f} s before it was due to expire "
                "(deleted, overwritten or shortened by hand?)"
            )
        return True, f"epoch {self.epoch} expired in this same Redis process"
