"""One schema upgrade across every API replica, under a lock in the database itself.

``bin/boot_server_in_docker`` runs ``uv run flask db upgrade`` with no lock, so API replicas
started together race (the loser dies with a duplicate ``alembic_version``). For an API replica
with ``SPIFFWORKFLOW_BACKEND_UPGRADE_DB=true`` spiffctl does the upgrade itself, before the script:

1. the schema is read (:mod:`spiffctl.schema.revision`); at head, there is nothing to do: no app start;
2. else the migration lock is taken (the kind's session lock, :mod:`spiffctl.databases`: an
   advisory or named lock on a server, an flock beside a file database), held by spiffctl's own
   session. A replica that finds it taken polls: it names the holder in a progress line, and
   stops waiting as soon as the schema reaches head (the holder has finished);
3. under the lock the schema is read again, then the backend's own command runs exactly as the
   script would run it (``uv run flask db upgrade``, cwd the backend root, the script's
   environment), its output passed through; SIGTERM/SIGINT go to it, and spiffctl waits for it;
4. the lock is released (the session closed) and the script is exec'd with ``UPGRADE_DB=false``.

A holder that dies (SIGKILL, a crash) releases the lock with its session; in a container its
upgrade dies with it, and on PostgreSQL the upgrade's single transaction rolls back, so the next
replica starts from where the schema really is. While the upgrade runs, the lock's session is
checked every second: if the database dropped it, another replica may take the lock, so the
upgrade is stopped.

``SPIFFWORKFLOW_BACKEND_DOWNGRADE_DB=true`` leaves downgrade and upgrade to the script (a
downgrade followed by an upgrade under one lock is not what operators expect of a replica start).
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType

from spiffctl import databases
from spiffctl.config.settings import Endpoint, P, Settings
from spiffctl.databases.sessions import SessionLock
from spiffctl.roles import Need, Role
from spiffctl.schema import revision
from spiffctl.schema.graph import Graph, MigrationsError, read_graph
from spiffctl.util import poll, prctl, procs
from spiffctl.util.errors import NOT_EXECUTABLE, NOT_FOUND, SpiffctlError, UnavailableError
from spiffctl.util.redact import Redactor, redact_urls_in_bytes
from spiffctl.wait import Say, waiting_event

UPGRADE_DB = P + "UPGRADE_DB"
DOWNGRADE_DB = P + "DOWNGRADE_DB"
# Exactly what bin/boot_server_in_docker runs.
COMMAND = ("uv", "run", "flask", "db", "upgrade")
LOCK = "migrate"
ALIVE_EVERY = 1.0
# Alembic's line per revision, printed before it runs: "Running upgrade 1a2b -> 3c4d, add a column"
# ("" before the first revision; "a, b" for a merge revision).
_RUNNING = re.compile(r"Running upgrade (?P<from>[^\n]*?) -> (?P<to>[^,\s]+)")


def prepare(
    settings: Settings,
    role: Role,
    env: dict[str, str],
    timeout: float,
    *,
    say: Say,
    waiting: Callable[[str], None] = lambda _: None,
) -> None:
    """Before ``role``'s script: bring the schema to head, or wait for it, as the role table says.

    ``env`` is the script's environment: ``UPGRADE_DB`` is set to false in it after an upgrade.
    """
    db = settings.endpoint(Need.DATABASE)
    if Need.SCHEMA not in role.needs or db is None:
        return
    if role.migrates and settings.flag(UPGRADE_DB):
        if settings.flag(DOWNGRADE_DB):
            say(
                f"warning: {DOWNGRADE_DB}=true: the {role.name} script downgrades and upgrades by itself, "
                "without spiffctl's lock; replicas started together race: start one replica for it"
            )
            return
        upgrade(db, settings.backend_dir, env, timeout, say=say, redactor=settings.redactor, waiting=waiting)
        env[UPGRADE_DB] = "false"
        say(f"{UPGRADE_DB}=true overridden to false for the {role.name} script: the schema is at head")
        return
    try:
        graph = read_graph(settings.backend_dir)
    except MigrationsError as e:
        say(f"warning: cannot read this image's migrations ({e}); the {role.name} script waits for the schema")
        return
    revision.wait_for_head(db, graph, timeout, say=say, waiting=waiting)


def upgrade(
    endpoint: Endpoint,
    backend_dir: Path,
    env: Mapping[str, str],
    timeout: float,
    *,
    say: Say,
    redactor: Redactor,
    waiting: Callable[[str], None] = lambda _: None,
) -> None:
    """Bring the schema to head, once across replicas; return when it is there. Raises on failure."""
    try:
        graph: Graph | None = read_graph(backend_dir)
    except MigrationsError as e:
        # Without the graph nothing tells "at head" from "behind": every replica takes its turn
        # under the lock and lets Alembic decide (an app start each), still never at once.
        say(f"warning: cannot read this image's migrations ({e}); every replica runs the upgrade in turn")
        graph = None
    reader = revision.RevisionReader(endpoint)
    try:
        state = _read(reader, graph, endpoint)
        if state is not None and state.at_head:
            say(f"schema {state.describe()}: no upgrade to run")
            return
        lock = _acquire(endpoint, reader, graph, timeout, say=say, waiting=waiting)
        if lock is None:
            return  # another replica finished the upgrade while we waited
        try:
            state = _read(reader, graph, endpoint)
            if state is not None and state.at_head:
                say(f"schema {state.describe()}: another replica applied the upgrade")
                return
            at = state.describe() if state is not None else "revision unknown"
            say(f"holding the migration lock; running `{' '.join(COMMAND)}` ({at})")
            started = time.monotonic()
            _run(backend_dir, env, lock, say=say, redactor=redactor)
            after = _read(reader, graph, endpoint)
            done = after.describe() if after is not None else "done"
            say(f"upgrade finished in {time.monotonic() - started:.1f} s: schema {done}; releasing the lock")
        finally:
            lock.close()
    finally:
        reader.close()


def _read(reader: revision.RevisionReader, graph: Graph | None, endpoint: Endpoint) -> revision.SchemaState | None:
    try:
        current = reader.read()
    except revision.Unreadable as e:
        raise revision.unreadable(endpoint, e.detail) from None
    if graph is None:
        return None
    state = revision.state_of(graph, current)
    if not state.known:
        raise revision.unknown_revision(state)
    return state


def _acquire(
    endpoint: Endpoint,
    reader: revision.RevisionReader,
    graph: Graph | None,
    timeout: float,
    *,
    say: Say,
    waiting: Callable[[str], None],
) -> SessionLock | None:
    """The lock, or ``None`` when the schema reached head while we waited for it."""
    lock = databases.of(endpoint).open_lock(endpoint, LOCK, revision.READ_TIMEOUT)

    def attempt() -> SessionLock | poll.Pending[str] | None:
        if lock.try_acquire():
            return lock
        state = _read(reader, graph, endpoint)
        if state is not None and state.at_head:
            say(f"schema {state.describe()}: another replica applied the upgrade while this one waited")
            lock.close()
            return None
        return poll.Pending(state.describe() if state is not None else "revision unknown")

    def holder() -> str:
        return lock.holder() or "a replica that is letting it go"

    def progress(where: str, waited: float) -> None:
        by = holder()
        say(
            waiting_event(
                f"waiting for the migration lock, held by {by} ({where}, {waited:.0f} s)",
                "migration lock",
                waited,
                f"held by {by}",
            )
        )
        waiting(f"the migration lock, held by {by}")

    def timed_out(where: str, waited: float) -> UnavailableError:
        return UnavailableError(
            f"the migration lock is still held by {holder()} after {timeout:g} s ({where}); check that "
            f"replica, or raise {revision.TIMEOUT_VAR} if its migration is just long"
        )

    try:
        return poll.until(attempt, poll.Poll(timeout), progress=progress, timed_out=timed_out)
    except BaseException:
        lock.close()
        raise


def _run(backend_dir: Path, env: Mapping[str, str], lock: SessionLock, *, say: Say, redactor: Redactor) -> None:
    """The backend's upgrade command as our child: output through, signals to it, its exit code out."""
    try:
        child = subprocess.Popen(
            COMMAND,
            cwd=backend_dir,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # In our process group, so whatever stops the replica's group (an engine's kill, supervisord's
            # killasgroup) stops the upgrade too; and SIGKILLed with us when only we are killed, so no
            # orphaned upgrade runs on while the next replica takes the lock.
            preexec_fn=prctl.die_with_parent,
        )
    except OSError as e:
        code = NOT_FOUND if isinstance(e, FileNotFoundError) else NOT_EXECUTABLE
        raise SpiffctlError(
            f"cannot run `{' '.join(COMMAND)}`: {e.strerror} (uv must be on PATH, as in the backend image)", code
        ) from None
    signals: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        signals.append(signum)
        # To the upgrade's own process: `uv run` passes it on to python. A second signal means "now".
        _kill(child.pid, signal.SIGKILL if len(signals) > 1 else signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        last = _pump(child, lock, say=say, redactor=redactor)
        status = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    code = procs.shell_code(status)
    if status == 0:
        return
    applying = f" while applying {last[0] or '(empty)'} -> {last[1]}" if last else " before applying any revision"
    if signals:
        raise SpiffctlError(
            f"stopped by signal {signals[0]} during the database upgrade{applying}; the upgrade exited with "
            f"code {code}; the lock is released",
            code,
        )
    raise SpiffctlError(
        f"the database upgrade (`{' '.join(COMMAND)}`) failed with code {code}{applying}; see its output above; "
        "the api script was not started",
        code,
    )


def _pump(child: subprocess.Popen[bytes], lock: SessionLock, *, say: Say, redactor: Redactor) -> tuple[str, str] | None:
    """Pass the child's output through line by line until it closes both; watch the lock's session."""
    assert child.stdout is not None and child.stderr is not None
    # the child's fd -> ours
    sinks = {child.stdout.fileno(): sys.stdout.fileno(), child.stderr.fileno(): sys.stderr.fileno()}
    partial = {fd: b"" for fd in sinks}
    # One scrubber per stream: a secret cut by a read is still seen whole.
    streams = {fd: redactor.stream() for fd in sinks}
    last: tuple[str, str] | None = None
    checked = time.monotonic()
    stopped = False
    with selectors.DefaultSelector() as selector:
        for fd in sinks:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            for key, _ in selector.select(timeout=ALIVE_EVERY):
                stream = key.fd
                data = os.read(stream, 65536)
                if not data:
                    selector.unregister(stream)
                    data, partial[stream] = partial[stream] + streams[stream].flush(), b""
                    if data:
                        _write(sinks[stream], data + b"\n")
                    continue
                lines, _, partial[stream] = (partial[stream] + streams[stream].feed(data)).rpartition(b"\n")
                if lines:
                    text = lines + b"\n"
                    _write(sinks[stream], text)
                    for m in _RUNNING.finditer(text.decode("utf-8", "replace")):
                        last = (m["from"], m["to"])
            if not stopped and time.monotonic() - checked >= ALIVE_EVERY:
                checked = time.monotonic()
                if not lock.alive():
                    # The database ended our session: the lock is gone and another replica may take it.
                    say("the database ended the migration lock's session; stopping the upgrade so it cannot race")
                    _kill(child.pid, signal.SIGTERM)
                    stopped = True
    return last


def _write(fd: int, data: bytes) -> None:
    data = redact_urls_in_bytes(data)  # values were masked on the stream
    while data:
        try:
            data = data[os.write(fd, data) :]
        except InterruptedError:
            continue
        except OSError:
            return  # our output is gone: the upgrade must still finish


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
