"""The lease protocol against real, private Redis servers (no mocks)."""

from __future__ import annotations

import itertools
import time

import pytest
import redis

from spiffctl import lease
from spiffctl.lockconfig import LockConfig
from tests.servers import PrivateRedis


@pytest.fixture
def server(private_redis: PrivateRedis) -> PrivateRedis:
    return private_redis


def conn(server: PrivateRedis) -> redis.Redis:
    """The lease's own client (strings, no retries) for looking at the keys."""
    return lease.client(server.url, 1.0)


def make(
    server: PrivateRedis, ttl: float = 3.0, *, host: str = "host-a", pid: int = 100, key: str = "k"
) -> lease.Lease:
    return lease.Lease(lease.client(server.url, 1.0), key, ttl, host=host, pid=pid)


def test_first_acquisition_cannot_prove_the_past(server):
    grant = make(server).try_acquire()
    assert isinstance(grant, lease.Grant)
    assert grant.epoch == 1
    assert not grant.proven
    assert "no record" in grant.why


def test_second_replica_sees_the_holder(server):
    a, b = make(server, host="host-a", pid=101), make(server, host="host-b", pid=202)
    before = time.time()
    grant = a.try_acquire()
    assert isinstance(grant, lease.Grant)
    holder = b.try_acquire()
    assert isinstance(holder, lease.Holder)
    assert (holder.host, holder.pid, holder.epoch) == ("host-a", 101, 1)
    assert holder.since is not None and before - 1 <= holder.since <= time.time()
    assert 0 < holder.ttl_left <= 3.0
    assert "host-a pid 101 since" in holder.describe()


def test_token_names_host_and_pid_and_is_unique():
    t1, t2 = lease.new_token("h", 7), lease.new_token("h", 7)
    assert t1 != t2
    assert t1.endswith(":h:7")


def test_renew_resets_ttl_and_local_deadline(server):
    a = make(server)
    a.try_acquire()
    conn(server).pexpire("k", 500)
    first = a.valid_until
    time.sleep(0.05)
    a.renew()
    assert a.valid_until > first
    assert conn(server).pttl("k") > 2500


def test_deadline_counts_from_before_the_request(server):
    reads = itertools.count(1000.0, 10.0)  # every clock read is 10 s later than the previous one
    a = lease.Lease(lease.client(server.url, 1.0), "k", 3.0, host="h", pid=1, clock=lambda: next(reads))
    grant = a.try_acquire()
    assert isinstance(grant, lease.Grant)
    # The first read is t0 for the acquire: a reply arriving "later" must not extend the lease.
    assert grant.valid_until == pytest.approx(1000.0 + 3.0 * (1 - lease.DRIFT) - lease.margin(3.0))


def test_clean_release_leaves_a_tombstone_that_proves_it(server):
    a, b = make(server, pid=1), make(server, pid=2)
    a.try_acquire()
    assert a.release()
    c = conn(server)
    assert c.get("k") is None
    assert c.get("k:released") == "1"
    assert 0 < c.pttl("k:released") <= lease.tombstone_ttl(3.0) * 1000
    grant = b.try_acquire()
    assert isinstance(grant, lease.Grant)
    assert grant.proven and "released cleanly" in grant.why
    assert grant.epoch == 2


def test_expiry_on_the_same_redis_proves_the_old_lease_ended(server):
    a, b = make(server, ttl=0.3, pid=1), make(server, ttl=0.3, pid=2)
    a.try_acquire()
    time.sleep(0.45)
    grant = b.try_acquire()
    assert isinstance(grant, lease.Grant)
    assert grant.proven and "same Redis process" in grant.why


def test_redis_restart_without_persistence_loses_the_key(server):
    a = make(server, pid=1)
    a.try_acquire()
    server.kill()  # no persistence: it comes back empty
    server.start()
    with pytest.raises(lease.LeaseLost, match=r"Redis restarted .* vanished"):
        a.renew()
    b = make(server, pid=2)
    grant = b.try_acquire()
    assert isinstance(grant, lease.Grant)
    assert not grant.proven  # the old holder may still run: wait a TTL


def test_record_from_an_earlier_redis_process_is_not_proof(server, tmp_path):
    # With persistence the record survives a restart but the run_id changes: no proof.
    a = make(server, ttl=0.5, pid=1)
    a.try_acquire()
    c = conn(server)
    c.hset("k:holder", "run_id", "f" * 40)  # as if recorded by the previous Redis process
    time.sleep(0.7)
    grant = make(server, pid=2).try_acquire()
    assert isinstance(grant, lease.Grant)
    assert not grant.proven and "earlier Redis process" in grant.why


def test_renewal_after_takeover_names_the_new_holder(server):
    a, b = make(server, ttl=0.3, host="host-a", pid=1), make(server, ttl=0.3, host="host-b", pid=2)
    a.try_acquire()
    time.sleep(0.45)
    assert isinstance(b.try_acquire(), lease.Grant)
    with pytest.raises(lease.LeaseLost, match="host-b pid 2"):
        a.renew()
    assert not a.release()  # not ours: must not delete b's key
    assert conn(server).get("k") == b.token


def test_epochs_increase_per_acquisition(server):
    a = make(server)
    epochs = []
    for _ in range(3):
        grant = a.try_acquire()
        assert isinstance(grant, lease.Grant)
        epochs.append(grant.epoch)
        a.release()
    assert epochs == [1, 2, 3]


def test_current_holder_for_doctor(server):
    config = LockConfig(enabled=True, url=server.url, key="k", ttl=3.0, source="SPIFFCTL_LOCK_URL")
    assert lease.current_holder(config, 1.0) is None
    make(server, host="box", pid=55).try_acquire()
    holder = lease.current_holder(config, 1.0)
    assert holder is not None
    assert (holder.host, holder.pid, holder.epoch) == ("box", 55, 1)
    assert 0 < holder.ttl_left <= 3.0


def test_different_keys_do_not_block_each_other(server):
    assert isinstance(make(server, key="one").try_acquire(), lease.Grant)
    assert isinstance(make(server, key="two").try_acquire(), lease.Grant)


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-lru", "volatile-ttl", "allkeys-random"])
def test_evicting_redis_is_refused(make_server, policy):
    r = make_server(PrivateRedis, maxmemory_policy=policy)
    problem = lease.eviction_problem(lease.client(r.url, 1.0))
    assert problem is not None
    assert policy in problem and "noeviction" in problem and "\n" not in problem


def test_noeviction_redis_is_accepted(server):
    assert lease.eviction_problem(lease.client(server.url, 1.0)) is None


def test_unreachable_redis_fails_within_the_timeout(server):
    r = server
    a = lease.Lease(lease.client(r.url, 0.3), "k", 3.0)
    a.try_acquire()
    r.freeze()
    try:
        started = time.monotonic()
        with pytest.raises(Exception, match=r"(?i)timeout|timed out"):
            a.renew()
        assert time.monotonic() - started < 1.5  # no hidden retries with backoff
    finally:
        r.thaw()
