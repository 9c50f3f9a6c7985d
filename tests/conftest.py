"""Fixtures shared by every test: the shared services, private servers, stand-in backends.

Shared services (session scope; fail, never skip, when one does not answer):
``shared_postgres``, ``shared_mariadb``, ``shared_redis``, ``shared_rabbitmq`` -> URL strings.

Per test, on the shared services: ``pg_database`` / ``mysql_database`` -> URL of a fresh,
uniquely named database (dropped afterwards); ``database`` -> (kind, URL) of a fresh database,
parametrized over PostgreSQL, MariaDB and SQLite; ``redis_namespace`` -> :class:`RedisNamespace`.

Private servers (``tests.support.servers``), started, cleaned up after the test: ``private_postgres``,
``private_mariadb``, ``private_redis``, ``private_rabbitmq`` (slow, ~6 s), and ``make_server``
(a factory for custom options). Network oddities (``tests.support.ports``): ``blackhole``, ``closed_port``.

Stand-ins (``tests.standins``): ``fake_backend`` -> Path of a private copy of the fake backend
root; ``standin_record`` -> Path of this test's record file (not yet created).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from spiffctl.config.settings import Endpoint, Need
from tests.standins import copy_backend
from tests.support import shared_services
from tests.support.ports import Blackhole, ClosedPort
from tests.support.servers.base import PrivateServer
from tests.support.servers.mariadb import PrivateMariaDB
from tests.support.servers.postgres import PrivatePostgres
from tests.support.servers.rabbitmq import PrivateRabbitMQ
from tests.support.servers.redis import PrivateRedis

S = TypeVar("S", bound=PrivateServer)


def _interrupt_on_term(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # SIGTERM would end pytest without finalizers or atexit: make it an interrupt, so private
    # servers are stopped and their directories removed. (SIGKILL cannot be caught: the next
    # session sweeps what a killed one left, see tests.support.servers.base._sweep_stale_roots.)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt_on_term)


# ---------------------------------------------------------------------------------------------
# Shared services
# ---------------------------------------------------------------------------------------------


def _require(name: str, url: str, check: Callable[[], None]) -> str:
    try:
        check()
    except Exception as exc:
        pytest.fail(
            f"shared {name} at {url} does not answer ({type(exc).__name__}: {exc}). "
            "It must be running for the tests (.ci/run starts it); tests never start or stop it.",
            pytrace=False,
        )
    return url


@pytest.fixture(scope="session")
def shared_postgres() -> str:
    """URL of the shared PostgreSQL (superuser postgres, trust auth, database postgres)."""
    return _require("PostgreSQL", shared_services.SHARED_POSTGRES_URL, shared_services.check_postgres)


@pytest.fixture(scope="session")
def shared_mariadb() -> str:
    """URL of the shared MariaDB (root, empty password, no database)."""
    return _require("MariaDB", shared_services.SHARED_MARIADB_URL, shared_services.check_mariadb)


@pytest.fixture(scope="session")
def shared_redis() -> str:
    """URL of the shared Redis (db 0). Prefer ``redis_namespace`` for keys."""
    return _require("Redis", shared_services.SHARED_REDIS_URL, shared_services.check_redis)


@pytest.fixture(scope="session")
def shared_rabbitmq() -> str:
    """URL of the shared RabbitMQ (guest/guest, vhost /)."""
    return _require("RabbitMQ", shared_services.SHARED_RABBITMQ_URL, shared_services.check_rabbitmq)


@pytest.fixture
def pg_database(shared_postgres: str) -> Iterator[str]:
    """URL of a fresh database on the shared PostgreSQL, dropped (WITH FORCE) after the test."""
    import psycopg
    from psycopg import sql

    name = shared_services.unique_name("spiffctl")
    with psycopg.connect(shared_postgres, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield shared_postgres.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(shared_postgres, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def mysql_database(shared_mariadb: str) -> Iterator[str]:
    """URL (``mysql://root@127.0.0.1:3306/<name>``) of a fresh database on the shared MariaDB."""
    import pymysql

    name = shared_services.unique_name("spiffctl")

    def run(stmt: str) -> None:
        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(stmt)
        finally:
            conn.close()

    run(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    yield shared_mariadb + name
    run(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(params=("postgresql", "mariadb", "sqlite"))
def database(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(kind, URL) of a fresh, empty database of each kind the backend supports."""
    kind = request.param
    if kind == "postgresql":
        return kind, request.getfixturevalue("pg_database")
    if kind == "mariadb":
        return kind, request.getfixturevalue("mysql_database")
    return kind, f"sqlite:///{tmp_path / 'db.sqlite3'}"


@pytest.fixture(params=["postgres", "mysql", "sqlite"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Endpoint:
    """A fresh, empty database of each kind as the backend's database endpoint; the SQLite file's
    folder does not exist yet, as on a first start."""
    if request.param == "postgres":
        url = request.getfixturevalue("pg_database")
    elif request.param == "mysql":
        url = request.getfixturevalue("mysql_database")
    else:
        url = f"sqlite:///{tmp_path / 'instance' / 'db.sqlite3'}"
    return Endpoint(Need.DATABASE, request.param, url, "SPIFFWORKFLOW_BACKEND_DATABASE_URI")


@dataclass(frozen=True)
class RedisNamespace:
    """A unique key prefix on the shared Redis; every key under it is deleted after the test."""

    url: str  # the shared Redis URL (db 0)
    prefix: str  # e.g. "spiffctl_1234_ab12cd34:"

    def key(self, name: str) -> str:
        return self.prefix + name

    def client(self) -> Any:
        """A ``redis.Redis`` client on the shared Redis (5 s timeouts, no retries)."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        return redis.Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=5, retry=Retry(NoBackoff(), 0))


@pytest.fixture
def redis_namespace(shared_redis: str) -> Iterator[RedisNamespace]:
    ns = RedisNamespace(url=shared_redis, prefix=shared_services.unique_name("spiffctl") + ":")
    yield ns
    client = ns.client()
    try:
        keys = list(client.scan_iter(match=ns.prefix + "*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


# ---------------------------------------------------------------------------------------------
# Private servers and network oddities
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def make_server() -> Iterator[Callable[..., Any]]:
    """Factory: ``make_server(PrivateRedis, requirepass="x")`` -> started instance, cleaned up after.

    Pass ``start=False`` to get it unstarted (it is still cleaned up).
    """
    made: list[PrivateServer] = []

    def factory(cls: type[S], *, start: bool = True, **kwargs: Any) -> S:
        server = cls(**kwargs)
        made.append(server)
        if start:
            server.start()
        return server

    yield factory
    for server in reversed(made):
        with contextlib.suppress(Exception):
            server.cleanup()


@pytest.fixture
def private_postgres(make_server: Callable[..., Any]) -> PrivatePostgres:
    """A started private PostgreSQL (trust auth); see ``PrivatePostgres``."""
    return make_server(PrivatePostgres)


@pytest.fixture
def private_mariadb(make_server: Callable[..., Any]) -> PrivateMariaDB:
    """A started private MariaDB (root, empty password)."""
    return make_server(PrivateMariaDB)


@pytest.fixture
def private_redis(make_server: Callable[..., Any]) -> PrivateRedis:
    """A started private Redis (no persistence, no password)."""
    return make_server(PrivateRedis)


@pytest.fixture
def private_rabbitmq(make_server: Callable[..., Any]) -> PrivateRabbitMQ:
    """A started private RabbitMQ node (guest/guest). Several seconds: mark tests ``slow``."""
    return make_server(PrivateRabbitMQ)


@pytest.fixture
def blackhole() -> Iterator[Blackhole]:
    """A port that accepts TCP connections and never answers (``Blackhole(mode="accept")``)."""
    with Blackhole() as hole:
        yield hole


@pytest.fixture
def closed_port() -> Iterator[ClosedPort]:
    """A port that refuses connections (connection refused) for the whole test."""
    with ClosedPort() as port:
        yield port


# ---------------------------------------------------------------------------------------------
# Stand-in backend
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def fake_backend(tmp_path: Path) -> Path:
    """A private copy of ``tests/standins/backend`` (tests may chmod, edit or delete its scripts)."""
    return copy_backend(tmp_path / "backend")


@pytest.fixture
def standin_record(tmp_path: Path) -> Path:
    """Where the stand-ins of this test append their records (pass as ``STANDIN_RECORD``)."""
    return tmp_path / "standin-records.jsonl"
