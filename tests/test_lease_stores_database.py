"""The lease store in the backend's own database, on real PostgreSQL, MariaDB and SQLite.

Store-level: what each call answers, and above all when a grant is proven (the previous lease
certainly ended with its script) and when it is not. Replicas under faults: tests/test_guard_db.py.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from spiffctl.config.settings import Endpoint, Need
from spiffctl.lease.stores import Grant, Holder, LeaseLost, StoreOutage, StoreRefusal
from spiffctl.lease.stores.database import DatabaseStore
from tests.support.poll import wait_until
from tests.support.ports import ClosedPort

TTL = 3.0


@pytest.fixture
def stores(db: Endpoint) -> Iterator[callable]:
    made: list[DatabaseStore] = []
    key = f"spiffctl:background:test-{uuid.uuid4().hex[:8]}"

    def make(pid: int = 0, ttl: float = TTL, **kw: object) -> DatabaseStore:
        store = DatabaseStore(db, key, ttl, timeout=2.0, linger=0.5, host="host-a", pid=pid or 1000 + len(made), **kw)
        made.append(store)
        return store

    yield make
    for s in made:
        s.close()


def acquired(result: Grant | Holder) -> Grant:
    assert isinstance(result, Grant), result
    return result


def test_first_acquisition_cannot_prove_the_past(db, stores):
    grant = acquired(stores().try_acquire())
    assert grant.epoch > 0
    # A server session remembers nothing; a new, empty SQLite lock file may be one a hand deleted.
    assert not grant.proven, grant.why


def test_second_replica_sees_the_holder(db, stores):
    a, b = stores(pid=4242), stores(pid=4343)
    grant = acquired(a.try_acquire())
    held = b.try_acquire()
    assert isinstance(held, Holder)
    if db.kind == "mysql":
        assert held.host.startswith("connection ") and held.epoch == 0
    else:
        assert (held.host, held.pid, held.epoch) == ("host-a", 4242, grant.epoch)
    assert 0 < held.ttl_left <= TTL


def test_clean_release_proves_the_next_grant(stores):
    a, b = stores(), stores()
    first = acquired(a.try_acquire())
    assert isinstance(b.try_acquire(), Holder)  # b watches from here on
    assert a.release()
    second = acquired(b.try_acquire())
    assert second.proven, second.why
    assert second.epoch > first.epoch


def test_a_holder_that_ended_without_release_is_not_proof(stores):
    a, b = stores(), stores()
    acquired(a.try_acquire())
    assert isinstance(b.try_acquire(), Holder)
    a.close()  # the session ends: a killed process, a terminated session
    grant = acquired(b.try_acquire())
    assert not grant.proven, grant.why


def test_a_holder_in_between_that_died_is_not_missed(stores):
    """A releases cleanly; C takes the lease (proven: it may start its script at once) and dies
    before B polls again. B must not take A's release as proof: C's script may still run."""
    a, b, c = stores(), stores(), stores()
    acquired(a.try_acquire())
    assert isinstance(b.try_acquire(), Holder) and isinstance(c.try_acquire(), Holder)
    assert a.release()
    assert acquired(c.try_acquire()).proven
    c.close()
    grant = acquired(b.try_acquire())
    assert not grant.proven, grant.why


def test_a_release_in_between_is_proof_again(stores):
    a, b, c = stores(), stores(), stores()
    acquired(a.try_acquire())
    assert isinstance(b.try_acquire(), Holder) and isinstance(c.try_acquire(), Holder)
    assert a.release()
    acquired(c.try_acquire())
    assert c.release()
    assert acquired(b.try_acquire()).proven


def test_renewal_keeps_a_deadline_from_before_the_request(stores):
    clock = iter([100.0, 200.0])
    store = stores(now=lambda: next(clock))
    grant = acquired(store.try_acquire())
    assert grant.valid_until < 100.0 + TTL
    deadline = store.renew()
    assert isinstance(deadline, float) and 200.0 < deadline < 200.0 + TTL


def test_renewal_after_release_is_lost(stores):
    store = stores()
    acquired(store.try_acquire())
    assert store.release()
    assert isinstance(store.renew(), LeaseLost)
    assert not store.release()


def test_current_holder_for_doctor(stores):
    a, b = stores(pid=77), stores()
    assert b.current_holder() is None
    acquired(a.try_acquire())
    holder = b.current_holder()
    assert holder is not None and holder.describe()


def test_different_keys_do_not_block_each_other(db):
    a = DatabaseStore(db, "spiffctl:background:one", TTL, timeout=2.0)
    b = DatabaseStore(db, "spiffctl:background:two", TTL, timeout=2.0)
    try:
        acquired(a.try_acquire())
        acquired(b.try_acquire())
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_session_terminated_by_the_server_loses_the_lease(kind, request):
    url = request.getfixturevalue("pg_database" if kind == "postgres" else "mysql_database")
    endpoint = Endpoint(Need.DATABASE, kind, url, "X")
    a = DatabaseStore(endpoint, "spiffctl:background:t", TTL, timeout=2.0)
    b = DatabaseStore(endpoint, "spiffctl:background:t", TTL, timeout=2.0)
    try:
        acquired(a.try_acquire())
        terminate_holder(kind, url)
        wait_until(lambda: isinstance(b.try_acquire(), Grant), 10, what=lambda: "the lock was not freed")
        lost = a.renew()
        assert isinstance(lost, LeaseLost) and "session" in lost.reason
    finally:
        a.close()
        b.close()


def terminate_holder(kind: str, url: str) -> None:
    """Every session of ours named as a lease holder, killed from the server side."""
    if kind == "postgres":
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'spiffctl bg %'"
            )
        return
    import pymysql

    from spiffctl.lease.stores.database import lock_name

    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT IS_USED_LOCK(%s)", (lock_name("spiffctl:background:t"),))
            (holder,) = cur.fetchone()
            cur.execute(f"KILL {int(holder)}")
    finally:
        conn.close()


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_an_idle_holder_is_dropped_by_the_server_after_the_ttl(kind, request):
    """What frees the lease of a frozen replica: the server's idle limit on the holder's session."""
    url = request.getfixturevalue("pg_database" if kind == "postgres" else "mysql_database")
    endpoint = Endpoint(Need.DATABASE, kind, url, "X")
    a = DatabaseStore(endpoint, "spiffctl:background:idle", 1.5, timeout=2.0)
    b = DatabaseStore(endpoint, "spiffctl:background:idle", 1.5, timeout=2.0)
    try:
        acquired(a.try_acquire())
        assert isinstance(b.try_acquire(), Holder)
        wait_until(lambda: isinstance(b.try_acquire(), Grant), 10, 0.2, what=lambda: "the idle holder kept the lock")
        assert isinstance(a.renew(), LeaseLost)
    finally:
        a.close()
        b.close()


def test_sqlite_lock_file_says_what_happened_last(tmp_path):
    endpoint = Endpoint(Need.DATABASE, "sqlite", f"sqlite:///{tmp_path / 'db.sqlite3'}", "X")
    a = DatabaseStore(endpoint, "k", TTL, timeout=1.0, host="h", pid=5)
    try:
        grant = acquired(a.try_acquire())
        (path,) = tmp_path.glob("db.sqlite3.spiffctl-lease-*.lock")
        text = path.read_text()
        assert '"state": "held"' in text and f'"epoch": {grant.epoch}' in text
        a.release()
        assert '"state": "released"' in path.read_text()
    finally:
        a.close()


def sqlite_pair(tmp_path):
    endpoint = Endpoint(Need.DATABASE, "sqlite", f"sqlite:///{tmp_path / 'db.sqlite3'}", "X")
    return [DatabaseStore(endpoint, "k", TTL, timeout=1.0, host="h", pid=pid) for pid in (5, 6)]


def test_sqlite_lock_file_deleted_by_hand_proves_nothing_and_fences_the_holder(tmp_path):
    a, b = sqlite_pair(tmp_path)
    try:
        acquired(a.try_acquire())
        assert isinstance(b.try_acquire(), Holder)  # b's descriptor names the file a locked
        (path,) = tmp_path.glob("db.sqlite3.spiffctl-lease-*.lock")
        path.unlink()
        grant = acquired(b.try_acquire())  # b opens the path again: a new file, a new lock
        assert not grant.proven and "deleted or emptied" in grant.why, grant.why
        lost = a.renew()
        assert isinstance(lost, LeaseLost), lost
    finally:
        a.close()
        b.close()


def test_sqlite_lock_file_rewritten_by_hand_fences_the_holder_and_proves_nothing(tmp_path):
    a, b = sqlite_pair(tmp_path)
    try:
        first = acquired(a.try_acquire())
        (path,) = tmp_path.glob("db.sqlite3.spiffctl-lease-*.lock")
        path.write_text(f'{{"state": "released", "epoch": {first.epoch}}}\n')  # a forged clean release
        assert isinstance(a.renew(), LeaseLost)  # a fences, and puts its own record back
        grant = acquired(b.try_acquire())
        assert not grant.proven and "died holding" in grant.why, grant.why
    finally:
        a.close()
        b.close()


def test_refused_connection_is_an_outage():
    with ClosedPort() as port:
        endpoint = Endpoint(Need.DATABASE, "postgres", port.url("postgresql", "/x"), "X")
        store = DatabaseStore(endpoint, "k", TTL, timeout=1.0)
        with pytest.raises(StoreOutage):
            store.try_acquire()


def test_wrong_password_is_a_refusal(mysql_database):
    url = mysql_database.replace("root@", "root:wrong-password@")
    store = DatabaseStore(Endpoint(Need.DATABASE, "mysql", url, "X"), "k", TTL, timeout=2.0)
    with pytest.raises(StoreRefusal) as e:
        store.try_acquire()
    assert "wrong-password" not in str(e.value)


def test_a_bug_is_not_an_outage(stores, monkeypatch):
    store = stores()
    acquired(store.try_acquire())
    session = store._session
    monkeypatch.setattr(session, "holds", lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        store.renew()


def test_release_waits_for_nobody_on_postgres(pg_database):
    """PostgreSQL keeps the proof in the listeners' queues: release returns without lingering."""
    endpoint = Endpoint(Need.DATABASE, "postgres", pg_database, "X")
    a = DatabaseStore(endpoint, "k", TTL, timeout=2.0, linger=30.0)
    try:
        acquired(a.try_acquire())
        started = time.monotonic()
        assert a.release()
        assert time.monotonic() - started < 30.0
    finally:
        a.close()


def test_a_forged_release_notification_on_postgres_is_not_proof(pg_database):
    """The holder's session is terminated; a hand then sends ``released E`` on the lease's channel."""
    import psycopg

    endpoint = Endpoint(Need.DATABASE, "postgres", pg_database, "X")
    a = DatabaseStore(endpoint, "spiffctl:background:forged", TTL, timeout=2.0, pid=1)
    b = DatabaseStore(endpoint, "spiffctl:background:forged", TTL, timeout=2.0, pid=2)
    try:
        first = acquired(a.try_acquire())
        assert isinstance(b.try_acquire(), Holder)
        channel = a._session.channel  # type: ignore[union-attr]
        with psycopg.connect(pg_database, autocommit=True) as hand:
            hand.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE %s",
                ("spiffctl bg epoch%",),
            )
            hand.execute("SELECT pg_notify(%s, %s)", (channel, f"released {first.epoch}"))
        results: list[Grant | Holder] = []
        wait_until(lambda: isinstance(results.append(b.try_acquire()) or results[-1], Grant), 10, 0.1)
        grant = results[-1]
        assert isinstance(grant, Grant)
        assert not grant.proven and "never seen holding" in grant.why, grant.why
    finally:
        a.close()
        b.close()
