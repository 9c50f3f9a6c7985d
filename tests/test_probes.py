"""Each probe against the real shared services: ok, transient and permanent outcomes."""

from __future__ import annotations

import http.server
import socket
import sqlite3
import threading
import uuid

import pytest

from spiffctl import probes
from spiffctl.config.settings import Endpoint
from spiffctl.probes import Status
from spiffctl.probes import http as http_probe
from spiffctl.roles import Need


def endpoint(kind: str, url: str, need: Need | None = Need.DATABASE) -> Endpoint:
    return Endpoint(need, kind, url, "TEST_URL")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_of(kind: str, url: str, timeout: float = 3) -> probes.Outcome:
    return probes.check(endpoint(kind, url), timeout)


# --- PostgreSQL -------------------------------------------------------------------------------


def test_postgres_ok():
    outcome = status_of("postgres", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    assert outcome.status is Status.OK, outcome.detail


def test_postgres_unknown_database_is_permanent():
    outcome = status_of("postgres", f"postgresql://postgres@127.0.0.1:5432/nodb_{uuid.uuid4().hex[:8]}")
    assert outcome.status is Status.PERMANENT
    assert "does not exist" in outcome.detail


def test_postgres_unknown_role_is_permanent():
    outcome = status_of("postgres", "postgresql://no_such_role_x:pw@127.0.0.1:5432/postgres")
    assert outcome.status is Status.PERMANENT


def test_postgres_refused_is_transient():
    outcome = status_of("postgres", f"postgresql://postgres@127.0.0.1:{closed_port()}/postgres")
    assert outcome.status is Status.TRANSIENT
    assert outcome.detail == "Connection refused"


def test_postgres_unresolvable_host_is_transient():
    outcome = status_of("postgres", "postgresql://postgres@no-such-host.invalid:5432/postgres")
    assert outcome.status is Status.TRANSIENT


# --- MySQL / MariaDB --------------------------------------------------------------------------


def test_mysql_ok():
    assert status_of("mysql", "mysql+mysqldb://root:@127.0.0.1:3306/mysql").ok


def test_mysql_unknown_database_is_permanent():
    outcome = status_of("mysql", f"mysql://root:@127.0.0.1/nodb_{uuid.uuid4().hex[:8]}")
    assert outcome.status is Status.PERMANENT
    assert "unknown database" in outcome.detail.lower()
    assert outcome.detail.lower().count("unknown database") == 1  # the label is not repeated


def test_mysql_wrong_password_is_permanent():
    outcome = status_of("mysql", "mysql://root:wrong-password@127.0.0.1/mysql")
    assert outcome.status is Status.PERMANENT
    assert "access denied" in outcome.detail.lower()


def test_mysql_refused_is_transient():
    assert status_of("mysql", f"mysql://root:@127.0.0.1:{closed_port()}/mysql").status is Status.TRANSIENT


# --- SQLite -----------------------------------------------------------------------------------


def test_sqlite_existing_database(tmp_path):
    db = tmp_path / "db.sqlite3"
    sqlite3.connect(db).execute("create table t (x int)").connection.close()
    assert status_of("sqlite", f"sqlite:///{db}").ok


def test_sqlite_missing_file_in_writable_folder_is_ok(tmp_path):
    outcome = status_of("sqlite", f"sqlite:///{tmp_path}/src/instance/db.sqlite3")
    assert outcome.ok
    assert "will create" in outcome.detail


def test_sqlite_folder_that_cannot_exist_is_permanent(tmp_path):
    (tmp_path / "afile").write_text("")  # a file where a folder should be: not creatable, even for root
    outcome = status_of("sqlite", f"sqlite:///{tmp_path}/afile/instance/db.sqlite3")
    assert outcome.status is Status.PERMANENT


def test_sqlite_not_a_database_is_permanent(tmp_path):
    (tmp_path / "db.sqlite3").write_text("this is not sqlite" * 100)
    assert status_of("sqlite", f"sqlite:///{tmp_path}/db.sqlite3").status is Status.PERMANENT


def test_sqlite_probe_never_creates_the_file(tmp_path):
    status_of("sqlite", f"sqlite:///{tmp_path}/db.sqlite3")
    assert not (tmp_path / "db.sqlite3").exists()


# --- Redis ------------------------------------------------------------------------------------


def test_redis_ok():
    assert status_of("redis", "redis://127.0.0.1:6379/0").ok


def test_redis_bad_db_number_is_permanent():
    assert status_of("redis", "redis://127.0.0.1:6379/999").status is Status.PERMANENT


def test_redis_refused_is_transient():
    assert status_of("redis", f"redis://127.0.0.1:{closed_port()}/0").status is Status.TRANSIENT


# --- RabbitMQ ---------------------------------------------------------------------------------


def test_amqp_ok():
    outcome = status_of("amqp", "amqp://guest:guest@127.0.0.1:5672//")
    assert outcome.ok, outcome.detail
    assert "RabbitMQ" in outcome.detail


def test_amqp_wrong_password_is_permanent_and_not_echoed():
    outcome = status_of("amqp", "amqp://guest:Wrong-Passw0rd@127.0.0.1:5672//")
    assert outcome.status is Status.PERMANENT
    assert "ACCESS_REFUSED" in outcome.detail
    assert "Wrong-Passw0rd" not in outcome.detail


def test_amqp_missing_vhost_is_permanent():
    assert status_of("amqp", "pyamqp://guest:guest@127.0.0.1:5672/no-such-vhost").status is Status.PERMANENT


def test_amqp_refused_is_transient():
    assert status_of("amqp", f"amqp://guest:guest@127.0.0.1:{closed_port()}//").status is Status.TRANSIENT


# --- a server that accepts and never answers ---------------------------------------------------


@pytest.fixture
def silent_port():
    """Listens (the kernel completes the handshake) but never reads or writes."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield s.getsockname()[1]
    s.close()


@pytest.mark.parametrize(
    ("kind", "template"),
    [
        ("postgres", "postgresql://postgres@127.0.0.1:{port}/postgres"),
        ("mysql", "mysql://root:@127.0.0.1:{port}/mysql"),
        ("redis", "redis://127.0.0.1:{port}/0"),
        ("amqp", "amqp://guest:guest@127.0.0.1:{port}//"),
    ],
)
def test_silent_servers_are_transient(silent_port, kind, template):
    outcome = status_of(kind, template.format(port=silent_port), timeout=1)
    assert outcome.status is Status.TRANSIENT, outcome.detail


# --- HTTP -------------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = {"/ok": 200, "/missing": 404, "/broken": 500}.get(self.path, 404)
        body = b'{"ok": true}'
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def web():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_outcomes(web):
    ok = probes.check(endpoint("http", f"{web}/ok", None), 2)
    assert ok.ok and http_probe.status_ok(ok.facts["body"])
    assert probes.check(endpoint("http", f"{web}/missing", None), 2).status is Status.PERMANENT
    assert probes.check(endpoint("http", f"{web}/broken", None), 2).status is Status.TRANSIENT
    refused = probes.check(endpoint("http", f"http://127.0.0.1:{closed_port()}/", None), 2)
    assert refused.status is Status.TRANSIENT


def test_status_ok_parsing():
    assert http_probe.status_ok('{"ok": true, "can_access_frontend": true}')
    assert not http_probe.status_ok('{"ok": false}')
    assert not http_probe.status_ok("<html>")


# --- SQL schema revision ----------------------------------------------------------------------


def test_schema_revision_of_sqlite(tmp_path):
    from spiffctl.databases import sqlite as sqlite_probe

    db = tmp_path / "db.sqlite3"
    conn = sqlite3.connect(db)
    assert sqlite_probe.revision(endpoint("sqlite", f"sqlite:///{db}"), 2).facts == {"revision": ""}
    conn.execute("create table alembic_version (version_num varchar(32))")
    conn.execute("insert into alembic_version values ('abc123')")
    conn.commit()
    conn.close()
    assert sqlite_probe.revision(endpoint("sqlite", f"sqlite:///{db}"), 2).facts == {"revision": "abc123"}
