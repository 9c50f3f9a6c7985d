"""The Redis lease store against real, private Redis servers (no mocks)."""

from __future__ import annotations

import itertools

import pytest
import redis

from spiffctl.lease import timing
from spiffctl.lease.stores import Grant, Holder, LeaseLost, StoreOutage, StoreRefusal
from spiffctl.lease.stores.redis import RedisStore, new_token, tombstone_ttl
from spiffctl.probes.redis import client
from tests.support.poll import wait_until
from tests.support.ports import ClosedPort
from tests.support.servers.redis import PrivateRedis


@pytest.fixture
def server(private_redis: PrivateRedis) -> PrivateRedis:
    return private_redis


def conn(server: PrivateRedis) -> redis.Redis:
    """The lease's own client (strings, no retries) for looking at the keys."""
    return client(server.url, 1.0)


def make(server: PrivateRedis, ttl: float = 3.0, *, host: str = "host-a", pid: int = 100, key: str = "k") -> RedisStore:
    return RedisStore.from_url(server.url, key, ttl, timeout=1.0, host=host, pid=pid)


def gone(server: PrivateRedis, key: str = "k") -> bool:
    return conn(server).get(key) is None


def test_first_acquisition_cannot_prove_the_past(server):
    grant = make(server).try_acquire()
    assert isinstance(grant, Grant)
    assert grant.epoch == 1
    assert not grant.proven
    assert "no record" in grant.why


def test_second_replica_sees_the_holder(server):
    a, b = make(server, host="host-a", pid=101), make(server, host="host-b", pid=202)
    assert isinstance(a.try_acquire(), Grant)
    holder = b.try_acquire()
    assert isinstance(holder, Holder)
    assert (holder.host, holder.pid, holder.epoch) == ("host-a", 101, 1)
    assert holder.since is not None
    assert 0 < holder.ttl_left <= 3.0
    assert "host-a pid 101 since" in holder.describe() and "UTC" in holder.describe()


def test_token_names_host_and_pid_and_is_unique():
    t1, t2 = new_token("h", 7), new_token("h", 7)
    assert t1 != t2
    assert t1.endswith(":h:7")


def test_deadlines_count_from_before_each_request(server):
    reads = itertools.count(1000.0, 10.0)  # every clock read is 10 s later than the previous one
    a = RedisStore(client(server.url, 1.0), "k", 3.0, host="h", pid=1, now=lambda: next(reads))
    grant = a.try_acquire()
    assert isinstance(grant, Grant)
    # The first read is t0 for the acquire: a reply arriving "later" must not extend the lease.
    assert grant.valid_until == pytest.approx(1000.0 + 3.0 * (1 - timing.DRIFT) - timing.margin(3.0))
    conn(server).pexpire("k", 500)
    assert a.renew() == pytest.approx(timing.local_deadline(1010.0, 3.0))
    assert conn(server).pttl("k") > 2500  # PEXPIRE reset the whole TTL


def test_clean_release_leaves_a_tombstone_that_proves_it(server):
    a, b = make(server, pid=1), make(server, pid=2)
    a.try_acquire()
    assert a.release()
    c = conn(server)
    assert c.get("k") is None
    assert c.get("k:released") == "1"
    assert 0 < c.pttl("k:released") <= tombstone_ttl(3.0) * 1000
    grant = b.try_acquire()
    assert isinstance(grant, Grant)
    assert grant.proven and "released cleanly" in grant.why
    assert grant.epoch == 2


def test_expiry_on_the_same_redis_proves_the_old_lease_ended(server):
    a, b = make(server, ttl=0.3, pid=1), make(server, ttl=0.3, pid=2)
    a.try_acquire()
    wait_until(lambda: gone(server), timeout=2, what="the lease key expired")
    grant = b.try_acquire()
    assert isinstance(grant, Grant)
    assert grant.proven and "same Redis process" in grant.why


def test_redis_restart_without_persistence_loses_the_key(server):
    a = make(server, pid=1)
    a.try_acquire()
    server.kill()  # no persistence: it comes back empty
    server.start()
    lost = a.renew()
    assert isinstance(lost, LeaseLost) and "Redis restarted (new run_id)" in lost.reason
    grant = make(server, pid=2).try_acquire()
    assert isinstance(grant, Grant)
    assert not grant.proven  # the old holder may still run: wait a TTL


def test_record_from_an_earlier_redis_process_is_not_proof(server):
    # With persistence the record survives a restart but the run_id changes: no proof.
    a = make(server, ttl=0.5, pid=1)
    a.try_acquire()
    conn(server).hset("k:holder", "run_id", "f" * 40)  # as if recorded by the previous Redis process
    wait_until(lambda: gone(server), timeout=2, what="the lease key expired")
    grant = make(server, pid=2).try_acquire()
    assert isinstance(grant, Grant)
    assert not grant.proven and "earlier Redis process" in grant.why


def test_renewal_after_takeover_names_the_new_holder(server):
    a, b = make(server, ttl=0.3, host="host-a", pid=1), make(server, ttl=0.3, host="host-b", pid=2)
    a.try_acquire()
    wait_until(lambda: gone(server), timeout=2, what="the lease key expired")
    assert isinstance(b.try_acquire(), Grant)
    lost = a.renew()
    assert isinstance(lost, LeaseLost) and "host-b pid 2" in lost.reason and "expired" in lost.reason
    assert not a.release()  # not ours: must not delete b's key
    assert conn(server).get("k") == b.token


def test_epochs_increase_per_acquisition(server):
    a = make(server)
    epochs = []
    for _ in range(3):
        grant = a.try_acquire()
        assert isinstance(grant, Grant)
        epochs.append(grant.epoch)
        assert a.release()
    assert epochs == [1, 2, 3]


def test_current_holder_for_doctor(server):
    reader = make(server, host="doctor", pid=1)
    assert reader.current_holder() is None
    make(server, host="box", pid=55).try_acquire()
    holder = reader.current_holder()
    assert holder is not None
    assert (holder.host, holder.pid, holder.epoch) == ("box", 55, 1)
    assert 0 < holder.ttl_left <= 3.0


def test_different_keys_do_not_block_each_other(server):
    assert isinstance(make(server, key="one").try_acquire(), Grant)
    assert isinstance(make(server, key="two").try_acquire(), Grant)


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-lru", "volatile-ttl", "allkeys-random"])
def test_evicting_redis_is_refused(make_server, policy):
    r = make_server(PrivateRedis, maxmemory_policy=policy)
    problem = make(r).refusal()
    assert problem is not None
    assert policy in problem and "noeviction" in problem and "\n" not in problem


def test_noeviction_redis_is_accepted(server):
    assert make(server).refusal() is None


# --- the error model: outage, refusal, bug ------------------------------------------------------


def test_frozen_redis_is_an_outage_within_the_timeout(server):
    a = RedisStore.from_url(server.url, "k", 3.0, timeout=0.3)
    a.try_acquire()
    server.freeze()
    try:
        with pytest.raises(StoreOutage, match=r"(?i)timeout|timed out") as caught:
            a.renew()
        assert caught.value.__cause__ is not None  # the driver's error, kept for SPIFFCTL_DEBUG
    finally:
        server.thaw()


def test_refused_connection_is_an_outage():
    with ClosedPort() as port:
        store = RedisStore.from_url(port.url("redis", "/0"), "k", 3.0, timeout=1.0)
        with pytest.raises(StoreOutage, match=r"(?i)connection refused"):
            store.try_acquire()


@pytest.mark.parametrize("given", ["wrong-password", ""])
def test_wrong_or_missing_password_is_a_refusal(make_server, given):
    r = make_server(PrivateRedis, requirepass="the-right-one")
    store = RedisStore.from_url(r.url_for(0, password=given), "k", 3.0, timeout=1.0)
    with pytest.raises(StoreRefusal, match="authentication failed") as caught:
        store.try_acquire()
    assert "the-right-one" not in str(caught.value)


def test_missing_database_number_is_a_refusal(server):
    store = RedisStore.from_url(server.url_for(999), "k", 3.0, timeout=1.0)
    with pytest.raises(StoreRefusal, match="DB index is out of range"):
        store.try_acquire()


def test_read_only_replica_is_an_outage(make_server):
    # A replica refuses writes until it is promoted (a failover in progress): wait, do not give up.
    with ClosedPort() as primary:
        r = make_server(PrivateRedis, config={"replicaof": f"127.0.0.1 {primary.port}"})
        with pytest.raises(StoreOutage, match="ReadOnlyError"):
            make(r).try_acquire()


def test_full_redis_under_noeviction_is_an_outage(make_server):
    r = make_server(PrivateRedis, maxmemory="10kb", maxmemory_policy="noeviction")
    store = make(r)
    assert store.refusal() is None  # the policy is the right one; it is just full
    with pytest.raises(StoreOutage, match="OutOfMemoryError"):
        store.try_acquire()


def test_a_bug_is_not_an_outage(server):
    store = make(server)
    store.host = object()  # type: ignore[assignment]  # what a bug would pass: redis-py cannot encode it
    with pytest.raises(redis.DataError):
        store.try_acquire()


def test_an_unforeseen_error_reply_is_not_an_outage(server):
    conn(server).set("k:holder", "not a hash")  # something else wrote our record's key
    conn(server).set("k", "someone")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        make(server).try_acquire()


# --- a hand on the keys: the proof fails safe, the holder fences ------------------------------

TAMPERS = {
    "DEL": lambda c: c.delete("k"),
    "SET k x PX 50": lambda c: c.set("k", "x", px=50),
    "PEXPIRE k 1": lambda c: c.pexpire("k", 1),
}


@pytest.mark.parametrize("tamper", list(TAMPERS))
def test_a_key_removed_by_hand_before_its_expiry_is_not_proof(server, tamper):
    a, b = make(server, ttl=3.0, pid=1), make(server, ttl=3.0, pid=2)
    assert isinstance(a.try_acquire(), Grant)
    TAMPERS[tamper](conn(server))
    wait_until(lambda: gone(server), timeout=2, what="the tampered key gone")
    grant = b.try_acquire()
    assert isinstance(grant, Grant)
    # Same Redis process, but the key vanished ~3 s before its recorded expiry: a's script may run on.
    assert not grant.proven and "before it was due to expire" in grant.why, grant.why
    lost = a.renew()  # and a fences at its next renewal
    assert isinstance(lost, LeaseLost) and "held by host-a pid 2" in lost.reason
    assert conn(server).get("k") == b.token


@pytest.mark.parametrize("tamper", list(TAMPERS))
def test_a_holder_whose_key_was_touched_by_hand_loses_it(server, tamper):
    a = make(server, pid=1)
    assert isinstance(a.try_acquire(), Grant)
    TAMPERS[tamper](conn(server))
    wait_until(lambda: conn(server).get("k") != a.token, timeout=2, what="the key no longer ours")
    lost = a.renew()
    assert isinstance(lost, LeaseLost)
    assert ("vanished" in lost.reason) if tamper != "SET k x PX 50" else ("overwritten" in lost.reason)


def test_renewal_keeps_the_recorded_expiry_on_redis_clock(server):
    a = make(server, pid=1)
    a.try_acquire()
    c = conn(server)

    def expires_in() -> int:
        seconds, micros = c.time()
        return int(c.hget("k:holder", "expires")) - (seconds * 1000 + micros // 1000)

    c.pexpire("k", 1000)
    a.renew()
    assert 2500 < expires_in() <= 3000
    assert abs(int(c.hget("k:holder", "expires")) - (c.time()[0] * 1000 + c.pttl("k"))) < 1000
    assert a.release()
    assert expires_in() <= 0  # a clean release ends the recorded lease now


def test_a_deleted_holder_record_fences_the_holder_and_proves_nothing(server):
    a, b = make(server, ttl=0.5, pid=1), make(server, ttl=0.5, pid=2)
    a.try_acquire()
    conn(server).delete("k:holder")
    lost = a.renew()
    assert isinstance(lost, LeaseLost) and "holder record" in lost.reason
    wait_until(lambda: gone(server), timeout=2, what="the lease key expired")
    grant = b.try_acquire()
    assert isinstance(grant, Grant) and not grant.proven and "no record" in grant.why


def test_a_rewritten_holder_record_fences_the_holder(server):
    a = make(server, pid=1)
    a.try_acquire()
    conn(server).hset("k:holder", "token", "someone else")
    lost = a.renew()
    assert isinstance(lost, LeaseLost) and "rewritten" in lost.reason


def test_a_deleted_tombstone_only_costs_the_proof_of_expiry(server):
    a, b = make(server, pid=1), make(server, pid=2)
    a.try_acquire()
    assert a.release()
    conn(server).delete("k:released")
    grant = b.try_acquire()
    # The release also ended the recorded expiry: still proven, by the same Redis process's clock.
    assert isinstance(grant, Grant) and grant.proven and "same Redis process" in grant.why


def test_a_deleted_epoch_counter_never_lowers_the_epoch(server):
    a = make(server, pid=1)
    for _ in range(3):
        a.try_acquire()
        a.release()
    conn(server).delete("k:epoch")
    grant = make(server, pid=2).try_acquire()
    assert isinstance(grant, Grant) and grant.epoch == 4 and grant.proven
