"""The machine's shared services, as tests reach them (never stop or restart these).

CI (``.ci/run``) makes sure they answer before pytest starts; the ``shared_*`` fixtures in
``conftest.py`` fail clearly when one does not. Use a unique database / key prefix per test (the
``pg_database``, ``mysql_database`` and ``redis_namespace`` fixtures) so tests never collide.
"""

from __future__ import annotations

import os
import uuid

SHARED_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"  # trust auth, superuser
SHARED_MARIADB_URL = "mysql://root@127.0.0.1:3306/"  # root, empty password
SHARED_REDIS_URL = "redis://127.0.0.1:6379/0"
SHARED_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"


def unique_name(prefix: str = "t") -> str:
    """A short identifier unique across concurrent test processes: ``<prefix>_<pid>_<hex>``."""
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


def check_postgres() -> None:
    import psycopg

    with psycopg.connect(SHARED_POSTGRES_URL, connect_timeout=5) as conn:
        conn.execute("SELECT 1")


def check_mariadb() -> None:
    import pymysql

    pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", connect_timeout=5).close()


def check_redis() -> None:
    import redis

    client = redis.Redis.from_url(SHARED_REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
    try:
        client.ping()
    finally:
        client.close()


def check_rabbitmq() -> None:
    import amqp

    conn = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest", connect_timeout=5)
    try:
        conn.connect()
    finally:
        conn.close()
