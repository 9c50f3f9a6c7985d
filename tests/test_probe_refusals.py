"""Refusals are permanent and outages transient, for every kind, against real servers.

A wrong password needs a server that has one: private instances here (the shared PostgreSQL
trusts everyone). What these servers really answer is what ``classify_text`` and the Redis error
reading are checked against; a few pure cases pin the rules themselves.
"""

from __future__ import annotations

import re

import pytest

from spiffctl import probes
from spiffctl.config.settings import Endpoint
from spiffctl.probes import REFUSED, Status, classify_text
from spiffctl.probes import redis as redis_probe
from spiffctl.roles import Need
from tests.support.ports import ClosedPort
from tests.support.servers.mariadb import PrivateMariaDB
from tests.support.servers.postgres import PrivatePostgres
from tests.support.servers.redis import PrivateRedis

RIGHT, WRONG = "Right-Pa55", "Wrong-Pa55"


def check(kind: str, url: str) -> probes.Outcome:
    return probes.check(Endpoint(Need.DATABASE, kind, url, "TEST_URL"), 3)


def test_every_refusal_marker_is_permanent_and_anything_else_transient():
    for marker in REFUSED:
        assert classify_text(f"server said: {marker.upper()} (details)").status is Status.PERMANENT, marker
    assert classify_text("no pg_hba.conf entry for host", ("no pg_hba.conf entry",)).status is Status.PERMANENT
    for text in ("Connection refused", "the database system is starting up", "something new", ""):
        assert classify_text(text).status is Status.TRANSIENT, text


@pytest.fixture(scope="module")
def postgres():
    with PrivatePostgres(password=RIGHT) as server:
        yield server


@pytest.fixture(scope="module")
def mariadb():
    with PrivateMariaDB(password=RIGHT) as server:
        yield server


# kind -> (its server's fixture, the database every server has); MariaDB words its refusals in either case.
DATABASES = {"postgres": ("postgres", "postgres"), "mysql": ("mariadb", "mysql")}


@pytest.mark.parametrize(
    ("kind", "database", "password", "words"),
    [
        ("postgres", "postgres", WRONG, "password authentication failed"),
        ("postgres", "no_such_db", RIGHT, "does not exist"),
        ("mysql", "mysql", WRONG, "(?i)access denied"),
        ("mysql", "no_such_db", RIGHT, "(?i)unknown database"),
    ],
    ids=["postgres-wrong-password", "postgres-no-such-database", "mysql-wrong-password", "mysql-no-such-database"],
)
def test_database_refusals_are_permanent(request, kind, database, password, words):
    server = request.getfixturevalue(DATABASES[kind][0])
    outcome = check(kind, server.url_for(database, password=password))
    assert outcome.status is Status.PERMANENT and re.search(words, outcome.detail), outcome.detail
    assert RIGHT not in outcome.detail and WRONG not in outcome.detail


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_database_right_password_is_ok(request, kind):
    fixture, database = DATABASES[kind]
    assert check(kind, request.getfixturevalue(fixture).url_for(database)).ok


@pytest.mark.parametrize("given", [WRONG, ""])
def test_redis_wrong_or_missing_password_is_permanent(make_server, given):
    server = make_server(PrivateRedis, requirepass=RIGHT)
    outcome = check("redis", server.url_for(0, password=given))
    assert outcome.status is Status.PERMANENT and "authentication failed" in outcome.detail
    assert RIGHT not in outcome.detail


@pytest.mark.parametrize("kind", ["postgres", "mysql", "redis"])
def test_refused_connections_are_transient(kind):
    with ClosedPort() as port:
        scheme = {"postgres": "postgresql", "mysql": "mysql", "redis": "redis"}[kind]
        assert check(kind, port.url(scheme, "/x" if kind != "redis" else "/0")).status is Status.TRANSIENT


def test_redis_errors_that_are_no_failure_of_redis_are_bugs():
    assert redis_probe.failure(TypeError("unsupported operand")) is None
    assert redis_probe.failure(KeyError("run_id")) is None
    outcome = redis_probe.classify(TypeError("unsupported operand"))  # a probe still reports it, as permanent
    assert outcome.status is Status.PERMANENT and "TypeError" in outcome.detail
