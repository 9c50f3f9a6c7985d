"""The registry of database kinds: a process imports only the kinds (and drivers) it uses."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from spiffctl import databases

PROBE_ONE_KIND = textwrap.dedent(
    """
    import json, sys
    from spiffctl import probes
    from spiffctl.config.settings import Endpoint
    from spiffctl.roles import Need
    probes.check(Endpoint(Need.DATABASE, "sqlite", "sqlite:///" + sys.argv[1], "X"), 2)
    print(json.dumps(sorted(sys.modules)))
    """
)


def test_a_process_imports_only_the_kind_it_uses(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", PROBE_ONE_KIND, str(tmp_path / "db.sqlite3")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    modules = set(json.loads(out))
    assert "spiffctl.databases.sqlite" in modules
    others = {f"spiffctl.databases.{k}" for k in databases.NAMES if k != "sqlite"}
    assert not modules & (others | {"psycopg", "pymysql"})


def test_every_kind_loads_once_and_an_unknown_one_is_refused():
    for name in databases.NAMES:
        assert databases.kind(name) is databases.kind(name)
    with pytest.raises(KeyError):
        databases.kind("oracle")
    assert databases.listing() == "PostgreSQL, MySQL or SQLite"
