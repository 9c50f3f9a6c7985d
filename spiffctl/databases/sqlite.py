"""SQLite: everything spiffctl needs of it (:class:`spiffctl.databases.Kind`).

The probe. Open the file read-only and query it, or check that it can be created. The backend
creates its instance folder at start, so a missing file is fine as long as the nearest existing
ancestor folder is writable.

The session lock: ``flock`` on ``<database file>.spiffctl-<purpose>.lock``, beside the database
file. One host only: every replica must see the same file through the same kernel (flock is not
reliable over NFS and similar network filesystems). The holder writes who it is into the file, so
a waiter can name it; the content is never trusted for anything else.

The lease: an exclusive ``flock`` on ``<database>.spiffctl-lease-<key hash>.lock``.

One host only, like SQLite itself here: every replica must reach the same file through the same
kernel (``flock`` does not work across hosts on NFS and other network filesystems). The kernel
drops the lock when the holder's process dies. The file says what happened last, one JSON line:
``{"state": "held", "epoch": N, "host": ..., "pid": ..., "since": ...}`` while held, and
``{"state": "released", "epoch": N}`` after a clean release (written after the script exited,
before the unlock). A new holder reads it under the lock: only ``released`` proves the previous
lease ended. ``held`` means its holder died holding it; an empty, missing or unreadable record
proves nothing either (first use, or a hand deleted or emptied the file while a holder ran: a
new file is a new lock, free at once): both wait one TTL. Epochs count up in the file.

A hand on the file. The holder checks at every renewal that the path still names the file it
locked and that the file still holds its own record; otherwise it fences (and writes its record
back first, so a rewritten ``released`` line proves nothing to the next holder). An acquirer
whose descriptor names a file that was deleted or replaced opens the path again, so two
processes never hold locks on two different files at once for long.

There is no server to drop a frozen holder: a holder that is frozen (SIGSTOP) keeps the lock
until it resumes; its script is fenced at its deadline all the same.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spiffctl.config.settings import Endpoint
from spiffctl.databases import dbapi, sessions
from spiffctl.databases.sessions import Acquisition
from spiffctl.lease.stores import Holder, released_cleanly
from spiffctl.probes import Outcome, classify_exception, ok, permanent, transient


def path_of(endpoint: Endpoint) -> Path | None:
    """The database file; ``None`` for an in-memory database."""
    rest = endpoint.url.split("://", 1)[1]
    return Path(rest[1:]) if rest.startswith("/") and len(rest) > 1 else None


def connect(endpoint: Endpoint, timeout: float) -> Any:
    path = path_of(endpoint)
    if path is None:
        return sqlite3.connect(":memory:")
    # mode=ro: a probe must never create or change the operator's database.
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)


def classify(e: BaseException) -> Outcome:
    if isinstance(e, OSError):  # the lock file's, not the database's
        return classify_exception(e)
    text = str(e)
    if "locked" in text or "busy" in text:
        return transient(f"database is locked ({text})")
    return permanent(text)


def check(endpoint: Endpoint, timeout: float) -> Outcome:
    path = path_of(endpoint)
    if path is None:
        return ok("in-memory database")
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK):
            return permanent(f"{path} is not readable and writable by uid {os.getuid()}")
        # SELECT 1 never touches the file; reading the schema proves it is a database.
        return dbapi.select_one(connect, classify, endpoint, timeout, "SELECT count(*) FROM sqlite_master")
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        return permanent(f"{path} does not exist and {ancestor} is not writable by uid {os.getuid()}")
    return ok(f"{path} does not exist yet; {ancestor} is writable, the backend will create it")


def revision(endpoint: Endpoint, timeout: float) -> Outcome:
    # Reachable means the file (or its folder) is usable: a missing file in an unwritable folder
    # is not an empty database.
    usable = check(endpoint, timeout)
    if not usable.ok:
        return usable
    path = path_of(endpoint)
    if path is not None and not path.exists():
        return ok("database file does not exist yet", revision="")
    return dbapi.schema_revision(connect, classify, missing_table, endpoint, timeout)


def missing_table(e: BaseException) -> bool:
    return "no such table" in str(e)


def lock_path(endpoint: Endpoint, purpose: str) -> Path:
    db = path_of(endpoint)
    if db is None:
        raise ValueError("an in-memory SQLite database has no file to lock beside")
    return db.with_name(f"{db.name}.spiffctl-{purpose}.lock")


class FileLock:
    def __init__(self, endpoint: Endpoint, purpose: str) -> None:
        self.purpose = purpose
        self.path = lock_path(endpoint, purpose)
        # The backend creates the instance folder at its first start; the lock may come first.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)

    def try_acquire(self) -> bool:
        if not self.try_flock():
            return False
        since = time.strftime("%H:%M:%S UTC", time.gmtime())
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{sessions.identity(self.purpose)}, since {since}\n".encode(), 0)
        return True

    def try_flock(self) -> bool:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def holder(self) -> str | None:
        text = self.holder_text()
        if text is None:
            return None
        return text or "another process on this host"

    def holder_text(self) -> str | None:
        """What the holder wrote into the file; ``None`` when nobody holds the lock."""
        probe = os.open(self.path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return os.pread(probe, 4096, 0).decode("utf-8", "replace").strip()
            fcntl.flock(probe, fcntl.LOCK_UN)
            return None
        finally:
            os.close(probe)

    def unlock(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)

    def alive(self) -> bool:
        return True  # the lock lives in our own file descriptor

    def close(self) -> None:
        try:
            os.close(self.fd)  # closing the descriptor drops the flock
        except OSError:
            pass


class SQLiteSession:
    def __init__(self, endpoint: Endpoint, name: str, ttl: float, *, host: str, pid: int) -> None:
        # The file is named after the lock (so after SPIFFCTL_LOCK_KEY), like the other kinds' locks.
        self.endpoint = endpoint
        self.purpose = f"lease-{name.rsplit(':', 1)[-1][:12]}"
        self.lock = FileLock(endpoint, self.purpose)
        self.path = self.lock.path
        self.ttl = ttl
        self.host = host
        self.pid = pid
        self.epoch = 0
        self.held = False

    def _record(self, fd: int) -> dict[str, Any]:
        try:
            data = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace") or "{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, Any]) -> None:
        os.ftruncate(self.lock.fd, 0)
        os.pwrite(self.lock.fd, (json.dumps(data) + "\n").encode(), 0)
        os.fsync(self.lock.fd)

    def _current(self) -> bool:
        """The path still names the file our descriptor has open (nobody deleted or replaced it)."""
        try:
            there = os.stat(self.path)
        except FileNotFoundError:
            return False
        ours = os.fstat(self.lock.fd)
        return (there.st_dev, there.st_ino) == (ours.st_dev, ours.st_ino)

    def _ours(self) -> dict[str, Any]:
        return {"state": "held", "epoch": self.epoch, "host": self.host, "pid": self.pid}

    def acquire(self) -> Acquisition | None:
        if not self._current():
            self.lock.close()  # a lock on a file nobody else can find any more protects nothing
            self.lock = FileLock(self.endpoint, self.purpose)
        if not self.lock.try_flock():
            return None
        last = self._record(self.lock.fd)
        previous = last.get("epoch")
        previous = previous if isinstance(previous, int) else 0
        self.epoch = previous + 1
        self._write({**self._ours(), "since": time.time()})
        self.held = True
        if last.get("state") == "released":
            return Acquisition(self.epoch, True, released_cleanly(previous))
        if not last:
            return Acquisition(
                self.epoch, False, f"{self.path} records no earlier holder (first use, or deleted or emptied by hand)"
            )
        return Acquisition(self.epoch, False, f"the holder of epoch {previous} died holding the lease")

    def holds(self) -> bool:
        if not self.held:
            return False
        record = self._record(self.lock.fd)
        if self._current() and {k: record.get(k) for k in self._ours()} == self._ours():
            return True
        # Deleted, replaced or rewritten by hand: fence. Our record back in our file first, so
        # whoever locks it next waits one TTL instead of trusting what the hand wrote.
        self._write({**self._ours(), "since": record.get("since")})
        return False

    def holder(self) -> Holder | None:
        if self.held:
            record = self._record(self.lock.fd)
        else:
            text = self.lock.holder_text()
            if text is None:
                return None
            try:
                record = json.loads(text)
            except ValueError:
                record = {}
        host, pid, since, epoch = (record.get(k) for k in ("host", "pid", "since", "epoch"))
        return Holder(
            host=host if isinstance(host, str) else "another process on this host",
            pid=pid if isinstance(pid, int) else 0,
            since=float(since) if isinstance(since, (int, float)) else None,
            epoch=epoch if isinstance(epoch, int) else 0,
            ttl_left=self.ttl,  # no expiry: the lock lasts as long as its holder's process
        )

    def release(self) -> bool:
        if not self.held:
            return False
        self._write({"state": "released", "epoch": self.epoch})
        self.lock.unlock()
        self.held = False
        return True

    def close(self) -> None:
        self.lock.close()


# What the registry asks of a kind (spiffctl.databases.Kind) beyond the probe above.

KEEP_READER = False  # a read-only handle per read: never keep the file open


def driver_errors() -> tuple[type[BaseException], ...]:
    return (OSError,)  # the lease lives in a lock file, not in the database


def open_lock(endpoint: Endpoint, purpose: str, timeout: float) -> FileLock:
    return FileLock(endpoint, purpose)


def open_session(
    endpoint: Endpoint, name: str, ttl: float, *, timeout: float, host: str, pid: int, linger: float
) -> SQLiteSession:
    return SQLiteSession(endpoint, name, ttl, host=host, pid=pid)


def connect_reader(endpoint: Endpoint, timeout: float) -> Any:
    path = path_of(endpoint)
    if path is not None and not path.exists():
        return None  # the backend creates the file at its first start: nothing migrated yet
    return connect(endpoint, timeout)


def read_revision(cur: Any) -> str:
    return dbapi.read_revision(cur, missing_table)


if TYPE_CHECKING:  # mypy checks this module against the Protocol
    import spiffctl.databases.sqlite as _this
    from spiffctl.databases import Kind

    _kind: Kind = _this
