"""Private, throw-away server instances and network oddities for tests.

Every class here runs a REAL server binary on a free port of 127.0.0.1, in its own temporary
directory, as its own process group. Nothing in here ever touches the shared services
(PostgreSQL 5432, MariaDB 3306, Redis 6379, RabbitMQ 5672): use those through the fixtures in
``conftest.py``; use a private instance when a test must stop, kill, freeze or misconfigure it.

Usage::

    with PrivateRedis(requirepass="s3cret") as redis:   # started on enter
        use(redis.url)                                  # redis://:s3cret@127.0.0.1:<port>/0
        redis.freeze()                                  # SIGSTOP: port open, nothing answers
        redis.thaw()
        redis.kill()                                    # SIGKILL the whole process group
        redis.start()                                   # same port, same data
    # stopped and its directory removed on exit

Lifecycle of every :class:`PrivateServer`: ``start()`` (waits, bounded, until the server answers a
real client, raises :class:`ServerStartError` with the log tail otherwise), ``stop()`` (graceful,
then SIGKILL after ``timeout``), ``kill()``, ``restart()``, ``freeze()``/``thaw()``, ``cleanup()``
(stop + remove the directory; idempotent). Instances not cleaned up explicitly are cleaned up at
interpreter exit (atexit), and so are the per-session templates.

Templates: ``initdb`` and ``mariadb-install-db`` run once per process into a template directory;
each instance copies it (``cp -a``), which is much faster than initialising again.

Running as root: PostgreSQL refuses to run as root, so when euid is 0 it runs as the ``postgres``
system user (its directories are chowned to that user); MariaDB runs with ``--user=root``.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import quote

T = TypeVar("T")
S = TypeVar("S", bound="PrivateServer")

LOCALHOST = "127.0.0.1"

__all__ = [
    "Blackhole",
    "ClosedPort",
    "PrivateMariaDB",
    "PrivatePostgres",
    "PrivateRabbitMQ",
    "PrivateRedis",
    "PrivateServer",
    "ServerStartError",
    "free_port",
    "group_members",
    "pid_alive",
    "port_open",
    "session_root",
    "wait_for_port",
    "wait_until",
]


# --------------------------------------------------------------------------------------------
# Waiting and probing
# --------------------------------------------------------------------------------------------


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Call ``predicate`` until it returns a truthy value and return that value.

    Exceptions raised by ``predicate`` count as "not yet" and the last one is chained to the
    :class:`TimeoutError` raised after ``timeout`` seconds, whose message names ``what``.
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            result = predicate()
        except Exception as exc:
            last_exc = exc
        else:
            if result:
                return result
        if time.monotonic() >= deadline:
            detail = f"; last error: {last_exc!r}" if last_exc else ""
            raise TimeoutError(f"{what}: not true after {timeout:.1f}s{detail}") from last_exc
        time.sleep(interval)


def eventually(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.05) -> bool:
    """True once ``predicate`` holds within ``timeout``, else False: for ``assert eventually(...)``."""
    try:
        wait_until(predicate, timeout=timeout, interval=interval)
    except TimeoutError:
        return False
    return True


def port_open(port: int, host: str = LOCALHOST, timeout: float = 0.5) -> bool:
    """True when a TCP connect to ``host:port`` succeeds within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(port: int, host: str = LOCALHOST, timeout: float = 10.0) -> None:
    """Wait (bounded) until something accepts TCP connections on ``host:port``."""
    wait_until(lambda: port_open(port, host), timeout=timeout, what=f"port {host}:{port} open")


_issued_ports: set[int] = set()
_port_lock = threading.Lock()


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port that is free right now and that this process has not handed out before.

    The kernel picks it (bind to port 0); there is an unavoidable window before the caller binds it.
    """
    with _port_lock:
        for _ in range(50):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
            if port not in _issued_ports:
                _issued_ports.add(port)
                return port
    raise RuntimeError("no free port found")


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def proc_stats() -> Iterator[tuple[int, list[str]]]:
    """(pid, stat fields after the command name) for every live (non-zombie) process.

    Fields: [0] state, [1] ppid, [2] pgrp, [3] session.
    """
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in ("Z", "X"):
            yield int(entry), fields


def group_members(pgid: int) -> list[int]:
    """Pids of live (non-zombie) processes whose process group is ``pgid``."""
    return [pid for pid, fields in proc_stats() if int(fields[2]) == pgid]


def session_members(sid: int) -> list[int]:
    """Pids of live (non-zombie) processes in session ``sid``."""
    return [pid for pid, fields in proc_stats() if int(fields[3]) == sid]


def children_map() -> dict[int, list[int]]:
    """ppid -> pids of its live children."""
    kids: dict[int, list[int]] = {}
    for pid, fields in proc_stats():
        kids.setdefault(int(fields[1]), []).append(pid)
    return kids


# --------------------------------------------------------------------------------------------
# Network oddities
# --------------------------------------------------------------------------------------------


class ClosedPort:
    """A port on 127.0.0.1 that refuses connections (RST) for as long as this object lives.

    The port is bound but not listening, so nobody else can take it meanwhile. ``int(closed)`` or
    ``closed.port`` gives the number; ``url(scheme)`` a URL pointing at it.
    """

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((LOCALHOST, 0))
        self.host = LOCALHOST
        self.port: int = self._sock.getsockname()[1]

    def url(self, scheme: str, path: str = "/") -> str:
        return f"{scheme}://{self.host}:{self.port}{path}"

    def close(self) -> None:
        self._sock.close()

    def __int__(self) -> int:
        return self.port

    def __enter__(self) -> ClosedPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Blackhole:
    """A TCP listener on a free port of 127.0.0.1 that never answers.

    ``mode="accept"`` (default): connections are accepted (the handshake completes, the client's
    connect succeeds) and then held open without a byte read or sent, until :meth:`close`. Clients
    hang in their first read/handshake: a server that "accepts and never answers".

    ``mode="drop"``: the accept queue is kept full, so the kernel drops further SYNs; the client's
    ``connect()`` itself hangs until its own timeout: a host that "swallows packets".

    ``connections`` counts the connections accepted (``accept`` mode).
    """

    def __init__(self, mode: Literal["accept", "drop"] = "accept") -> None:
        self.mode = mode
        self.host = LOCALHOST
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((LOCALHOST, 0))
        self.port: int = self._listener.getsockname()[1]
        self._held: list[socket.socket] = []
        self._closed = threading.Event()
        self.connections = 0
        if mode == "accept":
            self._listener.listen(128)
            self._thread = threading.Thread(target=self._accept_loop, name=f"blackhole-{self.port}", daemon=True)
            self._thread.start()
        else:
            # Backlog 0 lets exactly one connection queue up; fill it (and one in SYN-RECV) ourselves.
            self._listener.listen(0)
            for _ in range(2):
                filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect_ex((LOCALHOST, self.port))
                self._held.append(filler)
            time.sleep(0.05)

    def url(self, scheme: str, path: str = "/") -> str:
        return f"{scheme}://{self.host}:{self.port}{path}"

    def _accept_loop(self) -> None:
        self._listener.settimeout(0.2)
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)
            self.connections += 1

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        for s in self._held:
            with contextlib.suppress(OSError):
                s.close()
        self._held.clear()

    def __int__(self) -> int:
        return self.port

    def __enter__(self) -> Blackhole:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# Session root, templates, cleanup registry
# --------------------------------------------------------------------------------------------

_ROOT_PREFIX = "spiffctl-servers-"
_session_root: Path | None = None
_root_lock = threading.Lock()
_live: set[PrivateServer] = set()


def session_root() -> Path:
    """This process's temporary directory for every private server (world-traversable, 0755)."""
    global _session_root
    with _root_lock:
        if _session_root is None:
            _sweep_stale_roots()
            _session_root = Path(tempfile.mkdtemp(prefix=_ROOT_PREFIX))
            _session_root.chmod(0o755)
            (_session_root / "owner.pid").write_text(str(os.getpid()))
            atexit.register(_cleanup_all)
        return _session_root


def _sweep_stale_roots() -> None:
    """Kill the servers of test processes that died without cleaning up (SIGKILL, OOM), drop their dirs.

    Only processes of a recorded process group whose working directory lies inside the dead
    owner's root are killed, so a reused pid or pgid never hits a stranger.
    """
    for root in Path(tempfile.gettempdir()).glob(_ROOT_PREFIX + "*"):
        try:
            owner = int((root / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        if pid_alive(owner):
            continue
        for pgid_file in root.glob("*/server.pgid"):
            try:
                pgid = int(pgid_file.read_text())
            except (OSError, ValueError):
                continue
            for pid in group_members(pgid):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/cwd").startswith(str(root) + "/"):
                        os.kill(pid, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)


def _cleanup_all() -> None:
    for server in list(_live):
        with contextlib.suppress(Exception):
            server.cleanup()
    if _session_root is not None:
        shutil.rmtree(_session_root, ignore_errors=True)


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _chown_tree(path: Path, user: str) -> None:
    pw = pwd.getpwnam(user)
    subprocess.run(["chown", "-R", f"{pw.pw_uid}:{pw.pw_gid}", str(path)], check=True)


def _find_binary(name: str, *fallback_globs: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for pattern in fallback_globs:
        matches = sorted(glob.glob(pattern), reverse=True)
        if matches:
            return matches[0]
    raise FileNotFoundError(f"{name}: not on PATH nor in {', '.join(fallback_globs) or 'any fallback'}")


def _pg_bin(name: str) -> str:
    # Debian keeps the server binaries out of PATH, in /usr/lib/postgresql/<major>/bin.
    return _find_binary(name, f"/usr/lib/postgresql/*/bin/{name}")


class _Template:
    """A directory built once per process by ``build(path)``, under a lock."""

    def __init__(self, name: str, build: Callable[[Path], None]) -> None:
        self._name = name
        self._build = build
        self._path: Path | None = None
        self._lock = threading.Lock()
        self.seconds: float | None = None

    def get(self) -> Path:
        with self._lock:
            if self._path is None:
                base = Path(tempfile.mkdtemp(prefix=f"template-{self._name}-", dir=session_root()))
                base.chmod(0o755)
                start = time.monotonic()
                self._build(base / "data")
                self.seconds = time.monotonic() - start
                self._path = base / "data"
            return self._path


def _run_checked(cmd: list[str], *, what: str, user: str | None = None, cwd: Path | None = None) -> None:
    proc = subprocess.run(cmd, user=user, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")


# --------------------------------------------------------------------------------------------
# The base class
# --------------------------------------------------------------------------------------------


class ServerStartError(RuntimeError):
    """A private server did not come up; the message holds the tail of its log."""


class PrivateServer(ABC):
    """A server process owned by the test: own port, own directory, own process group.

    Subclasses implement :meth:`_command` and :meth:`_ping` and may override :meth:`_prepare`
    (once, before the first start), :meth:`_after_first_start`, :meth:`_env` and :attr:`_user`.
    """

    name: ClassVar[str] = "server"
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    start_timeout: ClassVar[float] = 30.0

    def __init__(self, *, port: int | None = None) -> None:
        self.host = LOCALHOST
        self.port: int = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=session_root()))
        self.dir.chmod(0o755)
        self.log_path = self.dir / "server.log"
        #: seconds the last successful :meth:`start` took (process spawn to first real answer)
        self.start_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._prepared = False
        self._started_once = False
        self._cleaned = False
        _live.add(self)

    # -- to implement ------------------------------------------------------------------------

    @property
    @abstractmethod
    def url(self) -> str:
        """The URL a client (and spiffctl) would use to reach this server."""

    @abstractmethod
    def _command(self) -> list[str]: ...

    @abstractmethod
    def _ping(self) -> bool:
        """One real client round trip; True (or raise) when the server answers."""

    def _prepare(self) -> None:  # noqa: B027 - optional hook
        """Build the data directory; runs once, before the first start."""

    def _after_first_start(self) -> None:  # noqa: B027 - optional hook
        """Runs once, after the first successful start (users, passwords...)."""

    def _env(self) -> Mapping[str, str] | None:
        return None

    @property
    def _user(self) -> str | None:
        return None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """Pid of the main process (also the process group id) while one was started."""
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self: S, timeout: float | None = None) -> S:
        """Start (if not running) and wait until a real client gets an answer. Returns ``self``."""
        if self._cleaned:
            raise RuntimeError(f"{self.name}: already cleaned up")
        if self.running:
            return self
        if not self._prepared:
            self._prepare()
            self._prepared = True
        began = time.monotonic()
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== start {time.strftime('%H:%M:%S')} ===\n".encode())
            log.flush()
            env = self._env()
            self._proc = subprocess.Popen(
                self._command(),
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=self._user,
                env=None if env is None else dict(env),
            )
        (self.dir / "server.pgid").write_text(str(self._proc.pid))
        limit = self.start_timeout if timeout is None else timeout

        def answered() -> bool:
            if self._proc is not None and self._proc.poll() is not None:
                raise ServerStartError(f"{self.name} exited with {self._proc.returncode}\n{self.log_tail()}")
            return self._ping()

        try:
            wait_until(answered, timeout=limit, interval=0.05, what=f"{self.name} on port {self.port} answering")
        except (TimeoutError, ServerStartError) as exc:
            self.kill()
            raise ServerStartError(f"{exc}\n--- log tail ---\n{self.log_tail()}") from None
        self.start_seconds = time.monotonic() - began
        if not self._started_once:
            self._started_once = True
            self._after_first_start()
        return self

    def stop(self, timeout: float = 15.0) -> int | None:
        """Graceful stop (:attr:`stop_signal`), SIGKILL to the group after ``timeout`` seconds.

        Returns the main process's exit status (None if it was not started).
        """
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            self._signal_group(signal.SIGCONT)  # a frozen server cannot act on the stop signal
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(self.stop_signal)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                proc.wait(10)
        self._reap_group()
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL the whole process group at once (a crash; no shutdown work)."""
        proc = self._proc
        if proc is None:
            return
        self._signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        self._reap_group()

    def restart(self: S, timeout: float = 15.0) -> S:
        """Graceful stop, then start again on the same port with the same data."""
        self.stop(timeout)
        return self.start()

    def freeze(self) -> None:
        """SIGSTOP the whole group: the port stays open, the kernel accepts, nothing answers."""
        self._require_running()
        self._signal_group(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT the whole group after :meth:`freeze`."""
        self._require_running()
        self._signal_group(signal.SIGCONT)

    def cleanup(self) -> None:
        """Stop (graceful, then hard) and remove the directory. Idempotent."""
        if self._cleaned:
            return
        try:
            self.stop(timeout=10.0)
        finally:
            self._cleaned = True
            _live.discard(self)
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self: S) -> S:
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.host}:{self.port} {state} pid={self.pid}>"

    # -- internals ---------------------------------------------------------------------------

    def _require_running(self) -> None:
        if not self.running:
            raise RuntimeError(f"{self.name} is not running")

    def _signal_group(self, sig: signal.Signals) -> None:
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    def _reap_group(self) -> None:
        """Make sure nothing of the group outlives the main process."""
        if self._proc is None:
            return
        pgid = self._proc.pid
        if group_members(pgid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
            wait_until(lambda: not group_members(pgid), timeout=10, what=f"process group {pgid} gone")


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------


def _pg_run_as() -> str | None:
    return "postgres" if _running_as_root() else None


def _build_pg_template(data: Path) -> None:
    user = _pg_run_as()
    if user:
        _chown_tree(data.parent, user)
    _run_checked(
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


_PG_TEMPLATE = _Template("postgres", _build_pg_template)


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
            _chown_tree(self.dir, self._user)

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


# --------------------------------------------------------------------------------------------
# MariaDB
# --------------------------------------------------------------------------------------------

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
    return ["--user=root"] if _running_as_root() else []


def _build_mariadb_template(data: Path) -> None:
    _run_checked(
        [
            _find_binary("mariadb-install-db", "/usr/bin/mysql_install_db"),
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


_MARIADB_TEMPLATE = _Template("mariadb", _build_mariadb_template)


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
            _find_binary("mariadbd", "/usr/sbin/mariadbd", "/usr/sbin/mysqld"),
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


# --------------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------------


class PrivateRedis(PrivateServer):
    """A private ``redis-server`` on a free port: no RDB snapshots, no AOF by default.

    ``requirepass`` sets the default user's password (:attr:`url` carries it); ``maxmemory`` and
    ``maxmemory_policy`` map to the same-named settings; ``config`` adds raw directives.
    """

    name = "redis"
    stop_signal = signal.SIGTERM

    def __init__(
        self,
        *,
        port: int | None = None,
        requirepass: str | None = None,
        maxmemory: str | None = None,
        maxmemory_policy: str | None = None,
        config: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(port=port)
        self.password = requirepass
        settings: dict[str, str] = {
            "port": str(self.port),
            "bind": self.host,
            "dir": str(self.dir),
            "save": '""',
            "appendonly": "no",
            "daemonize": "no",
            "protected-mode": "no",
            "logfile": '""',
        }
        if requirepass is not None:
            settings["requirepass"] = _redis_quote(requirepass)
        if maxmemory is not None:
            settings["maxmemory"] = maxmemory
        if maxmemory_policy is not None:
            settings["maxmemory-policy"] = maxmemory_policy
        settings.update(config or {})
        self.config_path = self.dir / "redis.conf"
        self.config_path.write_text("".join(f"{k} {v}\n" for k, v in settings.items()))

    @property
    def url(self) -> str:
        return self.url_for(0)

    def url_for(self, db: int = 0, *, password: str | None = None) -> str:
        password = self.password if password is None else password
        auth = f":{quote(password, safe='')}@" if password else ""
        return f"redis://{auth}{self.host}:{self.port}/{db}"

    def client(self, db: int = 0, *, password: str | None = None, timeout: float = 3.0) -> Any:
        """A ``redis.Redis`` client for this instance, without retries (redis-py retries by default).

        ``password`` defaults to the instance's; pass ``""`` to connect without one.
        """
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        password = self.password if password is None else password
        return redis.Redis(
            host=self.host,
            port=self.port,
            db=db,
            password=password or None,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )

    def _command(self) -> list[str]:
        return [_find_binary("redis-server"), str(self.config_path)]

    def _ping(self) -> bool:
        client = self.client()
        try:
            return bool(client.ping())
        finally:
            client.close()


def _redis_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --------------------------------------------------------------------------------------------
# RabbitMQ
# --------------------------------------------------------------------------------------------


class PrivateRabbitMQ(PrivateServer):
    """A private RabbitMQ node (own node name, AMQP and distribution ports, dirs, cookie).

    No plugins. User ``user`` / ``password`` (default guest/guest) on vhost ``/``; :attr:`url` is
    ``amqp://user:password@127.0.0.1:<port>//``. Takes several seconds to start (Erlang).
    It registers with the machine's ``epmd`` (port 4369) like any node; if no epmd runs, Erlang
    starts one, which then outlives the instance (it is shared, harmless, and not ours to kill).
    """

    name = "rabbitmq"
    stop_signal = signal.SIGTERM
    start_timeout = 60.0

    def __init__(self, *, port: int | None = None, user: str = "guest", password: str = "guest") -> None:
        super().__init__(port=port)
        self.user = user
        self.password = password
        self.dist_port = free_port()
        self.node_name = f"spiffctl-test-{self.port}@localhost"
        for sub in ("mnesia", "log", "home"):
            (self.dir / sub).mkdir()
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq-env.conf").write_text("")
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {self.host}:{self.port}\n"
            f"default_user = {user}\n"
            f"default_pass = {password}\n"
            "loopback_users = none\n"
        )

    @property
    def url(self) -> str:
        return self.url_for()

    def url_for(self, *, user: str | None = None, password: str | None = None, vhost: str = "/") -> str:
        user = self.user if user is None else user
        password = self.password if password is None else password
        path = "/" if vhost == "/" else quote(vhost, safe="")
        return f"amqp://{quote(user, safe='')}:{quote(password, safe='')}@{self.host}:{self.port}/{path}"

    def _env(self) -> Mapping[str, str]:
        env = dict(os.environ)
        d = self.dir
        env.update(
            HOME=str(d / "home"),
            RABBITMQ_NODENAME=self.node_name,
            RABBITMQ_NODE_IP_ADDRESS=self.host,
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(d / "mnesia"),
            RABBITMQ_LOG_BASE=str(d / "log"),
            RABBITMQ_LOGS="-",
            RABBITMQ_CONFIG_FILE=str(d / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(d / "advanced.config"),
            RABBITMQ_CONF_ENV_FILE=str(d / "rabbitmq-env.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(d / "enabled_plugins"),
            RABBITMQ_PID_FILE=str(d / "rabbitmq.pid"),
        )
        return env

    def _command(self) -> list[str]:
        # The /usr/sbin wrapper would `su rabbitmq`; the real script runs fine as root.
        real = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
        return [str(real) if real.exists() else _find_binary("rabbitmq-server")]

    def _ping(self) -> bool:
        import amqp

        conn = amqp.Connection(f"{self.host}:{self.port}", userid=self.user, password=self.password, connect_timeout=2)
        try:
            conn.connect()
        finally:
            with contextlib.suppress(Exception):
                conn.close()
        return True
