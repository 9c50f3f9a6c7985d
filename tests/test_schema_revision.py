"""Reading the schema revision cheaply and waiting for the head, on real PostgreSQL, MariaDB and
SQLite: an empty schema is empty, a refused read is never "empty", an unknown revision fails fast."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from spiffctl.config.settings import Endpoint, Need
from spiffctl.schema import revision as schema
from spiffctl.schema.graph import Graph
from spiffctl.util.errors import CONFIG, SpiffctlError, UnavailableError

GRAPH = Graph({"r1": (), "r2": ("r1",), "r3": ("r2",)})


def execute(db: Endpoint, *statements: str) -> None:
    if db.kind == "postgres":
        import psycopg

        with psycopg.connect(db.url, autocommit=True) as conn:
            for s in statements:
                conn.execute(s)
    elif db.kind == "mysql":
        from spiffctl.databases import mysql

        conn = mysql.connect(db, 5)
        try:
            with conn.cursor() as cur:
                for s in statements:
                    cur.execute(s)
            conn.commit()
        finally:
            conn.close()
    else:
        import sqlite3

        from spiffctl.databases.sqlite import path_of

        path = path_of(db)
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)  # as the backend makes its instance folder
        with sqlite3.connect(path) as conn:
            for s in statements:
                conn.execute(s)


def set_revision(db: Endpoint, revision: str) -> None:
    execute(
        db,
        "CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)",
        "DELETE FROM alembic_version",
        f"INSERT INTO alembic_version VALUES ('{revision}')",
    )


def test_empty_then_revisions_are_read_on_one_connection(db):
    reader = schema.RevisionReader(db)
    try:
        assert reader.read() == ""  # no alembic_version table (for SQLite: no file yet)
        set_revision(db, "r2")
        assert reader.read() == "r2"  # a kept connection still sees the change (no old snapshot)
        set_revision(db, "r3")
        assert reader.read() == "r3"
    finally:
        reader.close()
    assert schema.state_of(GRAPH, "r2").describe() == "at r2, head r3, 1 migration left"
    assert schema.state_of(GRAPH, "").describe() == "empty, head r3, 3 migrations left"


def test_wait_returns_within_a_poll_of_the_head(db):
    set_revision(db, "r1")
    said: list[str] = []
    waits: list[str] = []
    reached: list[float] = []

    def migrate_later() -> None:
        time.sleep(0.6)
        set_revision(db, "r3")
        reached.append(time.monotonic())

    threading.Thread(target=migrate_later, daemon=True).start()
    state = schema.wait_for_head(db, GRAPH, 30, say=said.append, waiting=waits.append)
    assert state.at_head and reached
    assert said and said[0].startswith("waiting for the schema: at r1, head r3, 2 migrations left; ")
    assert "no replica holds the migration lock" in said[0]
    assert waits == ["the schema: at r1, head r3, 2 migrations left"]


def test_the_wait_names_the_holder_of_the_migration_lock(db):
    from spiffctl import databases

    lock = databases.of(db).open_lock(db, "migrate", 5)
    try:
        assert lock.try_acquire()
        said: list[str] = []
        with pytest.raises(UnavailableError) as caught:
            schema.wait_for_head(db, GRAPH, 1, say=said.append)
        assert "migration lock held by " in said[0]
        assert (
            "not at head after 1 s: empty, head r3, 3 migrations left; migration lock held by" in caught.value.message
        )
        assert "SPIFFCTL_MIGRATION_TIMEOUT" in caught.value.message
    finally:
        lock.close()


def test_a_revision_this_image_does_not_know_fails_at_once(db):
    set_revision(db, "f00dfeed")
    started = time.monotonic()
    with pytest.raises(SpiffctlError) as caught:
        schema.wait_for_head(db, GRAPH, 60, say=lambda _: None)
    assert caught.value.exit_code == CONFIG and time.monotonic() - started < 30
    assert "f00dfeed" in caught.value.message and "head r3" in caught.value.message


def test_postgres_without_select_is_unreadable_not_empty(pg_database, shared_postgres):
    import psycopg

    role = f"noselect_{uuid.uuid4().hex[:8]}"
    db = Endpoint(Need.DATABASE, "postgres", pg_database, "SPIFFWORKFLOW_BACKEND_DATABASE_URI")
    set_revision(db, "r3")
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
    try:
        as_role = Endpoint(Need.DATABASE, "postgres", pg_database.replace("postgres@", f"{role}@"), "X")
        reader = schema.RevisionReader(as_role)
        with pytest.raises(schema.Unreadable) as caught:
            reader.read()
        assert caught.value.permanent and "permission denied" in caught.value.detail
        reader.close()
        # Without USAGE on the schema, PostgreSQL says "does not exist": still not "empty".
        with psycopg.connect(pg_database, autocommit=True) as conn:
            conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        reader = schema.RevisionReader(as_role)
        with pytest.raises(schema.Unreadable) as caught:
            reader.read()
        assert caught.value.permanent and "no USAGE privilege" in caught.value.detail
        reader.close()
        with pytest.raises(UnavailableError, match="needs SELECT on alembic_version"):
            schema.wait_for_head(as_role, GRAPH, 5, say=lambda _: None)
    finally:
        with psycopg.connect(pg_database, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
        with psycopg.connect(shared_postgres, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")


def test_mysql_without_select_is_unreadable_not_empty(mysql_database):
    import pymysql

    user = f"nosel_{uuid.uuid4().hex[:8]}"
    db = Endpoint(Need.DATABASE, "mysql", mysql_database, "SPIFFWORKFLOW_BACKEND_DATABASE_URI")
    set_revision(db, "r3")
    name = mysql_database.rsplit("/", 1)[1]
    root = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
    try:
        with root.cursor() as cur:
            cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'")
            cur.execute(f"CREATE USER '{user}'@'localhost' IDENTIFIED BY 'pw'")
            cur.execute(f"GRANT INSERT ON `{name}`.* TO '{user}'@'%'")
            cur.execute(f"GRANT INSERT ON `{name}`.* TO '{user}'@'localhost'")
        as_user = Endpoint(Need.DATABASE, "mysql", f"mysql://{user}:pw@127.0.0.1:3306/{name}", "X")
        reader = schema.RevisionReader(as_user)
        with pytest.raises(schema.Unreadable) as caught:
            reader.read()
        assert caught.value.permanent and "denied" in caught.value.detail.lower()
        reader.close()
    finally:
        with root.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
            cur.execute(f"DROP USER IF EXISTS '{user}'@'localhost'")
        root.close()
