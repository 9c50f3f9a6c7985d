"""Session locks in the database, on real PostgreSQL, MariaDB and SQLite: exclusive, named, and
released with their session whatever happens to the process that held them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from spiffctl import databases
from spiffctl.config.settings import Endpoint, Need
from tests.support.poll import wait_until


def test_one_holder_at_a_time_and_the_waiter_can_name_it(db):
    a = databases.of(db).open_lock(db, "migrate", 5)
    b = databases.of(db).open_lock(db, "migrate", 5)
    try:
        assert b.holder() is None
        assert a.try_acquire()
        assert not b.try_acquire()
        holder = b.holder()
        assert holder is not None
        if db.kind == "mysql":
            assert holder.startswith("connection ")
        else:
            assert f"spiffctl migrate on {os.uname().nodename}"[:40] in holder and f"pid {os.getpid()}" in holder
        assert a.alive()
        a.close()
        assert b.try_acquire()
        assert b.holder() is not None
    finally:
        a.close()
        b.close()


def test_different_purposes_do_not_block_each_other(db):
    a = databases.of(db).open_lock(db, "migrate", 5)
    b = databases.of(db).open_lock(db, "something-else", 5)
    try:
        assert a.try_acquire() and b.try_acquire()
    finally:
        a.close()
        b.close()


HOLD = textwrap.dedent(
    """
    import sys, time
    from spiffctl import databases
    from spiffctl.config.settings import Endpoint, Need
    db = Endpoint(Need.DATABASE, sys.argv[1], sys.argv[2], "X")
    lock = databases.of(db).open_lock(db, "migrate", 5)
    assert lock.try_acquire()
    print("held", flush=True)
    time.sleep(300)
    """
)


def test_a_holder_killed_with_sigkill_releases_through_the_database(db):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, db.kind, db.url], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    waiter = databases.of(db).open_lock(db, "migrate", 5)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "held\n"
        assert not waiter.try_acquire() and waiter.holder() is not None
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        # The server notices the closed connection (the kernel, the dropped flock) on its own.
        wait_until(waiter.try_acquire, timeout=10, what="the lock to be released with its session")
    finally:
        waiter.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_alive_is_false_once_the_server_ended_the_session(pg_database, shared_postgres):
    import psycopg

    db = Endpoint(Need.DATABASE, "postgres", pg_database, "X")
    lock = databases.of(db).open_lock(db, "migrate", 5)
    try:
        assert lock.try_acquire() and lock.alive()
        pid = lock.conn.info.backend_pid  # type: ignore[attr-defined]
        with psycopg.connect(shared_postgres, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert not lock.alive()
        other = databases.of(db).open_lock(db, "migrate", 5)
        try:
            assert other.try_acquire()
        finally:
            other.close()
    finally:
        lock.close()
