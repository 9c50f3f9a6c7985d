"""A private MariaDB (``PrivateMariaDB``), from a ``mariadb-install-db`` template built once per process."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.support.ports import port_open
from tests.support.servers.base import PrivateServer, Template, find_binary, run_checked, running_as_root

_MARIADB_TUNING = [
    "--innodb-log-file-size=8M",
    "--innodb-buffer-pool-size=32M",
    "--innodb-flush-log-at-trx-commit=2",
    "--innodb-doublewrite=0",
    "--innodb-use-native-aio=0",
    "--skip-name-resolve",
    "--skip-log-bin",
]


def _mariadb_user_args() -> list[str]:
    return ["--user=root"] if running_as_root() else []


def _build_mariadb_template(data: Path) -> None:
    run_checked(
        [
            find_binary("mariadb-install-db", "/usr/bin/mysql_install_db"),
            "--no-defaults",
            f"--datadir={data}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            *_mariadb_user_args(),
            *_MARIADB_TUNING,
        ],
        what="mariadb-install-db",
        cwd=data.parent,
    )


_MARIADB_TEMPLATE = Template("mariadb", _build_mariadb_template)


class PrivateMariaDB(PrivateServer):
    """A private MariaDB (``mariadbd``) on a free port.

    TCP logins use ``root@127.0.0.1`` / ``root@::1``, with ``password`` (default: empty), so a
    wrong password fails with "Access denied". :attr:`url` is ``mysql://root[:pw]@127.0.0.1:<port>/``.
    Admin helpers use the private Unix socket (``root@localhost``, no password).
    """

    name = "mariadb"
    stop_signal = signal.SIGTERM

    def __init__(self, *, port: int | None = None, password: str | None = None) -> None:
        super().__init__(port=port)
        self.password = password
        self.data_dir = self.dir / "data"
        self.socket_path = self.dir / "mysqld.sock"

    @property
    def url(self) -> str:
        return self.url_for("")

    def url_for(self, database: str, *, password: str | None = None) -> str:
        """``mysql://`` URL (root over TCP) for ``database`` ('' for none)."""
        password = self.password if password is None else password
        auth = "root" + (f":{quote(password, safe='')}" if password else "")
        return f"mysql://{auth}@{self.host}:{self.port}/{quote(database, safe='')}"

    def _prepare(self) -> None:
        template = _MARIADB_TEMPLATE.get()
        subprocess.run(["cp", "-a", str(template), str(self.data_dir)], check=True)

    def _command(self) -> list[str]:
        return [
            find_binary("mariadbd", "/usr/sbin/mariadbd", "/usr/sbin/mysqld"),
            "--no-defaults",
            f"--datadir={self.data_dir}",
            f"--port={self.port}",
            f"--bind-address={self.host}",
            f"--socket={self.socket_path}",
            f"--pid-file={self.dir / 'mysqld.pid'}",
            f"--tmpdir={self.dir}",
            "--max-connections=60",
            *_mariadb_user_args(),
            *_MARIADB_TUNING,
        ]

    def connect(self, database: str | None = None) -> Any:
        """An autocommit PyMySQL connection as root over the private socket."""
        import pymysql

        return pymysql.connect(
            unix_socket=str(self.socket_path),
            user="root",
            password="",
            database=database,
            autocommit=True,
            connect_timeout=3,
        )

    def _ping(self) -> bool:
        conn = self.connect()
        try:
            conn.ping()
        finally:
            conn.close()
        return port_open(self.port)

    def _after_first_start(self) -> None:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                for host in ("127.0.0.1", "::1"):
                    cur.execute("CREATE USER IF NOT EXISTS 'root'@%s", (host,))
                    cur.execute("ALTER USER 'root'@%s IDENTIFIED BY %s", (host, self.password or ""))
                    cur.execute("GRANT ALL PRIVILEGES ON *.* TO 'root'@%s WITH GRANT OPTION", (host,))
        finally:
            conn.close()

    def create_database(self, name: str) -> str:
        """Create database ``name`` (utf8mb4); return its URL."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{_mysql_ident(name)}` CHARACTER SET utf8mb4")
        finally:
            conn.close()
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{_mysql_ident(name)}`")
        finally:
            conn.close()


def _mysql_ident(name: str) -> str:
    if "`" in name or not name:
        raise ValueError(f"unsupported MySQL identifier: {name!r}")
    return name
