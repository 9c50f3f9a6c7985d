"""What every private server shares: the session's root folder, data templates, the lifecycle."""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import ClassVar, TypeVar

from tests.support.poll import wait_until
from tests.support.ports import LOCALHOST, free_port
from tests.support.procs import group_members, pid_alive

S = TypeVar("S", bound="PrivateServer")


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


def running_as_root() -> bool:
    return os.geteuid() == 0


def chown_tree(path: Path, user: str) -> None:
    pw = pwd.getpwnam(user)
    subprocess.run(["chown", "-R", f"{pw.pw_uid}:{pw.pw_gid}", str(path)], check=True)


def find_binary(name: str, *fallback_globs: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for pattern in fallback_globs:
        matches = sorted(glob.glob(pattern), reverse=True)
        if matches:
            return matches[0]
    raise FileNotFoundError(f"{name}: not on PATH nor in {', '.join(fallback_globs) or 'any fallback'}")


class Template:
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


def run_checked(cmd: list[str], *, what: str, user: str | None = None, cwd: Path | None = None) -> None:
    proc = subprocess.run(cmd, user=user, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")


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
