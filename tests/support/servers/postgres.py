"""A private PostgreSQL (``PrivatePostgres``), from an ``initdb`` template built once per process."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.support.ports import port_open
from tests.support.servers.base import PrivateServer, Template, chown_tree, find_binary, run_checked, running_as_root


def _pg_bin(name: str) -> str:
    # Debian keeps the server binaries out of PATH, in /usr/lib/postgresql/<major>/bin.
    return find_binary(name, f"/usr/lib/postgresql/*/bin/{name}")


def _pg_run_as() -> str | None:
    return "postgres" if running_as_root() else None


def _build_pg_template(data: Path) -> None:
    user = _pg_run_as()
    if user:
        chown_tree(data.parent, user)
    run_checked(
        [
            _pg_bin("initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ],
        what="initdb",
        user=user,
        cwd=data.parent,
    )


_PG_TEMPLATE = Template("postgres", _build_pg_template)


class PrivatePostgres(PrivateServer):
    """A private PostgreSQL (``postgres`` binary) on a free port.

    Without ``password``, every connection is trusted and :attr:`url` is
    ``postgresql://postgres@127.0.0.1:<port>/postgres``.

    With ``password``, role ``user`` (created as a superuser if it is not ``postgres``) gets that
    password and TCP connections require scram-sha-256 (pg_hba), so a wrong password fails with
    "password authentication failed". Admin helpers (:meth:`connect`, :meth:`create_database`)
    always go through the instance's private Unix socket, which stays trusted.
    """

    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: does not wait for clients to disconnect

    def __init__(self, *, port: int | None = None, user: str = "postgres", password: str | None = None) -> None:
        super().__init__(port=port)
        self.user = user
        self.password = password
        self.data_dir = self.dir / "data"
        self.socket_dir = self.dir / "sock"

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str, *, user: str | None = None, password: str | None = None) -> str:
        """``postgresql://`` URL for ``database``, as the instance's user unless told otherwise."""
        user = self.user if user is None else user
        password = self.password if password is None else password
        auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password is not None else "")
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(database, safe='')}"

    @property
    def _user(self) -> str | None:
        return _pg_run_as()

    def _prepare(self) -> None:
        template = _PG_TEMPLATE.get()
        subprocess.run(["cp", "-a", str(template), str(self.data_dir)], check=True)
        self.socket_dir.mkdir()
        hba = ["local all all trust"]
        method = "scram-sha-256" if self.password is not None else "trust"
        hba += [f"host all all 127.0.0.1/32 {method}", f"host all all ::1/128 {method}"]
        (self.data_dir / "pg_hba.conf").write_text("\n".join(hba) + "\n")
        if self._user:
            chown_tree(self.dir, self._user)

    def _command(self) -> list[str]:
        settings = {
            "listen_addresses": self.host,
            "unix_socket_directories": str(self.socket_dir),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "32MB",
            "max_connections": "60",
            "logging_collector": "off",
            "password_encryption": "scram-sha-256",
        }
        cmd = [_pg_bin("postgres"), "-D", str(self.data_dir), "-p", str(self.port)]
        for key, value in settings.items():
            cmd += ["-c", f"{key}={value}"]
        return cmd

    def connect(self, database: str = "postgres") -> Any:
        """An autocommit psycopg connection as superuser ``postgres`` over the private socket."""
        import psycopg

        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user="postgres",
            dbname=database,
            autocommit=True,
            connect_timeout=3,
        )

    def _ping(self) -> bool:
        with self.connect() as conn:
            conn.execute("SELECT 1")
        # The TCP listener is opened before the socket; check it is there too.
        return port_open(self.port)

    def _after_first_start(self) -> None:
        if self.password is None and self.user == "postgres":
            return
        from psycopg import sql

        with self.connect() as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (self.user,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            stmt = sql.SQL(verb + " ROLE {} WITH LOGIN SUPERUSER").format(sql.Identifier(self.user))
            if self.password is not None:
                stmt = sql.SQL("{} PASSWORD {}").format(stmt, sql.Literal(self.password))
            conn.execute(stmt)

    def create_database(self, name: str, *, owner: str | None = None) -> str:
        """Create database ``name`` (owned by ``owner`` or the instance's user); return its URL."""
        from psycopg import sql

        with self.connect() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner or self.user))
            )
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        from psycopg import sql

        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
