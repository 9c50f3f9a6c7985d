"""Background replicas and overlap accounting for the lease tests and bench (servers: tests/support/servers/).

Every process a replica creates (spiffctl, its watchdog, the stand-in script and its worker)
inherits a unique ``SPIFFCTL_TEST_MARK`` variable, so :meth:`Replica.processes` finds them through
``/proc`` even after they are orphaned, and :meth:`Replica.destroy` leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from spiffctl.config.settings import load
from spiffctl.lease.config import lease_config
from spiffctl.lease.stores.redis import RedisStore
from spiffctl.probes.redis import client
from tests.standins import give_venv
from tests.support.poll import wait_until
from tests.support.procs import pid_alive
from tests.support.servers.mariadb import PrivateMariaDB
from tests.support.servers.postgres import PrivatePostgres
from tests.support.servers.redis import PrivateRedis

HERE = Path(__file__).resolve().parent
STANDIN = HERE / "background_standin.py"
FAULTY = HERE / "faulty_background.py"
REPO = HERE.parents[1]
GAP = 0.25  # a worker silent this long (5 ticks) was frozen or dead: its activity is split there


def write_backend(root: Path, *, warm: bool = False) -> Path:
    """A backend root whose Background script runs the stand-in through a bash layer, like the real one.

    With ``warm`` it is a backend with an app, as the real one: a venv python that imports the
    stand-in backend package and APScheduler (tests/standins/site), so the warm start works, and a
    script that costs what the real one costs before its scheduler runs (``STANDIN_SCRIPT_SHAPE``
    in tests/support/background_standin.py). Without, spiffctl falls back to the script, which starts at once."""
    (root / "bin").mkdir(parents=True, exist_ok=True)
    script = root / "bin" / "start_blocking_apscheduler"
    shape = "export STANDIN_SCRIPT_SHAPE=true\n" if warm else ""
    script.write_text(f'#!/usr/bin/env bash\nset -e\n{shape}"{sys.executable}" "{STANDIN}"\n')
    script.chmod(0o755)
    (root / "bpmn").mkdir(exist_ok=True)
    if warm:
        give_venv(root, site=True)
    return root


def background_command(backend: Path) -> list[str]:
    return [sys.executable, "-m", "spiffctl", "run", "--role", "background", "--no-wait", "--backend-dir", str(backend)]


def faulty_command(backend: Path) -> list[str]:
    """A Background replica whose lease store raises like a bug would (see ``faulty_background.py``)."""
    return [sys.executable, str(FAULTY), str(backend)]


def replica_env(
    tmp: Path, name: str, lease_url: str, *, ttl: float = 3, db: str = "db", **extra: str
) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp),
        "SPIFFWORKFLOW_BACKEND_DATABASE_URI": f"sqlite:///{tmp / (db + '.sqlite3')}",
        "FLASK_SESSION_SECRET_KEY": "not-a-real-secret-key",
        "SPIFFWORKFLOW_BACKEND_BPMN_SPEC_ABSOLUTE_DIR": str(tmp / "backend" / "bpmn"),
        "SPIFFCTL_LOCK_URL": lease_url,
        "SPIFFCTL_LOCK_TTL": str(ttl),
        "SPIFFCTL_RUN_DIR": str(tmp / f"run-{name}"),
        "STANDIN_RECORDS": str(tmp / "records.txt"),
        "STANDIN_NAME": name,
    }
    env.update(extra)
    return env


class Replica:
    """``spiffctl run --role background`` in a process group of its own, like one container."""

    def __init__(self, tmp: Path, name: str, env: dict[str, str], command: list[str] | None = None) -> None:
        self.tmp = tmp
        self.name = name
        self.command = command or background_command(tmp / "backend")
        self.mark = uuid.uuid4().hex
        self.env = {**env, "SPIFFCTL_TEST_MARK": self.mark}
        self.log_path = tmp / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Replica:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=REPO,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def processes(self) -> list[int]:
        """Every live process carrying this replica's mark (orphans included)."""
        needle = f"SPIFFCTL_TEST_MARK={self.mark}".encode()
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if needle in f.read().split(b"\0"):
                        found.append(int(entry))
            except OSError:
                continue
        return found

    def warm_children(self) -> list[int]:
        """This replica's warm children (spiffctl/lease/warm.py run by the venv's python; not their watchdog)."""
        found = []
        for pid in self.processes():
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            watchdog = any(b"spiffctl.lease.watchdog" in arg for arg in argv)
            if any(arg.endswith(b"/warm.py") for arg in argv) and not watchdog:
                found.append(pid)
        return found

    def signal_all(self, sig: int) -> None:
        for pid in self.processes():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def signal(self, sig: int) -> None:
        assert self.proc
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc
        return self.proc.wait(timeout=timeout)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def destroy(self) -> None:
        for _ in range(3):
            self.signal_all(signal.SIGKILL)
            self.signal_all(signal.SIGCONT)
            if self.proc:
                try:
                    self.proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    continue
            deadline = time.monotonic() + 2
            while self.processes() and time.monotonic() < deadline:
                time.sleep(0.05)
            if not self.processes():
                return


@dataclass
class Run:
    pid: int
    epoch: str
    name: str
    start: float
    times: list[float]
    stop: float | None = None


def read_runs(path: Path) -> dict[int, Run]:
    runs: dict[int, Run] = {}
    if not path.exists():
        return runs
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        kind, t, pid = parts[0], float(parts[1]), int(parts[2])
        if kind == "start":
            runs[pid] = Run(pid, parts[3], parts[4], t, [t])
        elif pid in runs:
            runs[pid].times.append(t)
            if kind == "stop":
                runs[pid].stop = t
    return runs


def active_segments(run: Run) -> list[tuple[float, float]]:
    """Stretches during which the worker demonstrably ran (consecutive records less than GAP apart)."""
    segments = []
    begin = prev = run.times[0]
    for t in run.times[1:]:
        if t - prev > GAP:
            segments.append((begin, prev))
            begin = t
        prev = t
    segments.append((begin, prev))
    return segments


def overlap(runs: dict[int, Run]) -> float:
    """Seconds during which two or more workers were running at once."""
    events = []
    for run in runs.values():
        for a, b in active_segments(run):
            events += [(a, 1), (b, -1)]
    events.sort(key=lambda e: (e[0], e[1]))
    total, depth, since = 0.0, 0, 0.0
    for t, delta in events:
        if depth >= 2:
            total += t - since
        depth += delta
        since = t
    return total


def alive_workers(runs: dict[int, Run]) -> list[int]:
    return [pid for pid in runs if pid_alive(pid)]


def holder_of(runs: dict[int, Run]) -> Run | None:
    """The most recently started worker that is still alive."""
    alive = set(alive_workers(runs))
    live = [r for r in runs.values() if r.pid in alive]
    return max(live, key=lambda r: r.start) if live else None


class Cluster:
    """One private Redis, one stand-in backend, any number of replicas sharing them."""

    kind = "redis"  # where the lease lives; DbCluster: "postgres" or "mysql"

    def __init__(self, tmp: Path, *, password: str | None = None, ttl: float = 3.0, warm: bool = False) -> None:
        self.tmp = tmp
        self.ttl = ttl
        write_backend(tmp / "backend", warm=warm)
        self.redis = PrivateRedis(requirepass=password).start()
        self.replicas: list[Replica] = []
        self.url = self.redis.url

    def env(self, name: str, **extra: str) -> dict[str, str]:
        return replica_env(self.tmp, name, extra.pop("url", self.url), ttl=self.ttl, **extra)

    def key(self, **extra: str) -> str:
        return lease_config(load(self.env("x", **extra), self.tmp / "backend")).key

    def prime(self) -> None:
        """Leave a clean-release tombstone so the first holder needs not wait a TTL."""
        first = RedisStore.from_url(self.url, self.key(), self.ttl, timeout=1.0)
        try:
            first.try_acquire()
            first.release()
        finally:
            first.close()

    def start(self, name: str, command: list[str] | None = None, **extra: str) -> Replica:
        replica = Replica(self.tmp, name, self.env(name, **extra), command).start()
        self.replicas.append(replica)
        return replica

    def holder_and_standby(self) -> tuple[Replica, Replica]:
        """Replica ``a`` running the script, ``b`` its standby that has named it."""
        self.prime()
        a = self.start("a")
        self.wait_worker("a", timeout=2 * self.ttl + 5)  # an unproven first grant waits one TTL
        b = self.start("b")
        self.wait_log(b, "standby: the Background lease is held by")
        return a, b

    def runs(self):
        return read_runs(self.tmp / "records.txt")

    def workers_of(self, name: str):
        return [r for r in self.runs().values() if r.name == name]

    def wait_worker(self, name: str, count: int = 1, timeout: float = 15) -> float:
        """Wait until ``name`` has started ``count`` workers; the start time of the latest."""
        wait_until(lambda: len(self.workers_of(name)) >= count, timeout, what=self.logs)
        return max(r.start for r in self.workers_of(name))

    def wait_log(self, replica: Replica, text: str, timeout: float = 15) -> None:
        wait_until(lambda: text in replica.log(), timeout, 0.05, what=self.logs)

    def logs(self) -> str:
        return "\n".join(f"--- {r.name} (pid {r.pid})\n{r.log()}" for r in self.replicas)

    def assert_no_overlap(self) -> None:
        assert overlap(self.runs()) == 0, self.logs()

    def close(self) -> None:
        for r in self.replicas:
            r.destroy()
        self.redis.cleanup()


# A hand on the lease's keys: the key removed or replaced before its expiry, or one of the records
# the proof relies on deleted (the holder record, the tombstone, the epoch counter).
KEY_FAULTS = ("key-del", "key-set", "key-pexpire", "key-records")
REDIS_FAULTS = ("kill", "term", "stop", "stop", "redis-freeze", "redis-restart", *KEY_FAULTS)


def touch_keys(url: str, key: str, fault: str, rng: random.Random) -> None:
    """What an operator's hand (``redis-cli``) does to the lease's keys in :func:`chaos`."""
    conn = client(url, 1.0)
    try:
        if fault == "key-del":
            conn.delete(key)
        elif fault == "key-set":
            conn.set(key, "x", px=50)
        elif fault == "key-pexpire":
            conn.pexpire(key, 1)
        else:
            conn.delete(f"{key}:{rng.choice(['holder', 'released', 'epoch'])}")
    finally:
        conn.close()


DB_FAULTS = ("kill", "term", "stop", "stop", "db-restart", "db-terminate")
WARM_FAULTS = ("kill", "term", "stop", "warm-kill", "warm-stop", "redis-freeze")


def chaos(cluster: Cluster, seconds: float, seed: int, faults: tuple[str, ...] = REDIS_FAULTS) -> list[str]:
    """Three replicas; for ``seconds``, every 0.5-2 s one random fault, mostly aimed at the holder.

    Faults: SIGKILL a replica (restarted at once), SIGTERM it (restarted after it exits), SIGSTOP
    its renewer for up to 2 TTL; Redis: freeze it for up to 2 TTL, restart it without its data,
    and a hand on the keys (:data:`KEY_FAULTS`);
    a database (:class:`DbCluster`): restart it, terminate every lease session from the server;
    warm replicas: SIGKILL a replica's warm children, SIGSTOP them for up to 2 TTL.
    Everything is thawed at the end; returns the faults applied.
    """
    ttl = cluster.ttl
    rng = random.Random(seed)
    cluster.prime()
    key = cluster.key()
    live = {name: cluster.start(name) for name in ("r1", "r2", "r3")}
    frozen: dict[str, float] = {}
    frozen_children: dict[int, float] = {}
    redis_frozen_until = 0.0
    end = time.monotonic() + seconds
    applied: list[str] = []
    while time.monotonic() < end:
        time.sleep(rng.uniform(0.5, 2.0))
        now = time.monotonic()
        for name, until in list(frozen.items()):
            if now >= until:
                live[name].signal(signal.SIGCONT)
                del frozen[name]
        for pid, until in list(frozen_children.items()):
            if now >= until:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
                del frozen_children[pid]
        if redis_frozen_until and now >= redis_frozen_until:
            cluster.redis.thaw()
            redis_frozen_until = 0.0
        current = holder_of(cluster.runs())
        name = current.name if current and rng.random() < 0.7 else rng.choice(list(live))
        fault = rng.choice(faults)
        if name in frozen and fault in ("kill", "term", "stop"):
            continue
        if fault.startswith(("redis", "key")) and redis_frozen_until:
            continue
        applied.append(f"{fault}:{name}")
        if fault == "kill":
            live[name].signal(signal.SIGKILL)
            live[name] = cluster.start(name)
        elif fault == "term":
            live[name].signal(signal.SIGTERM)
            live[name].wait(15)
            live[name] = cluster.start(name)
        elif fault == "stop":
            live[name].signal(signal.SIGSTOP)
            frozen[name] = now + rng.uniform(0.5, 2 * ttl)
        elif fault.startswith("warm-"):
            for pid in live[name].warm_children():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL if fault == "warm-kill" else signal.SIGSTOP)
                if fault == "warm-stop":
                    frozen_children[pid] = now + rng.uniform(0.5, 2 * ttl)
        elif fault == "redis-freeze":
            cluster.redis.freeze()
            redis_frozen_until = now + rng.uniform(0.5, 2 * ttl)
        elif fault == "redis-restart":
            cluster.redis.restart()
        elif fault.startswith("key-"):
            touch_keys(cluster.url, key, fault, rng)
        elif fault == "db-restart":
            cluster.server.restart()
        else:
            cluster.terminate_sessions()
    for name in frozen:
        live[name].signal(signal.SIGCONT)
    for pid in frozen_children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    if redis_frozen_until:
        cluster.redis.thaw()
    return applied


class DbCluster(Cluster):
    """One private PostgreSQL or MariaDB: the backend's database, and so the lease's (no Redis)."""

    def __init__(self, tmp: Path, kind: str, *, ttl: float = 3.0, warm: bool = False) -> None:
        self.tmp = tmp
        self.ttl = ttl
        self.kind = kind
        write_backend(tmp / "backend", warm=warm)
        self.server: PrivatePostgres | PrivateMariaDB = PrivatePostgres() if kind == "postgres" else PrivateMariaDB()
        self.server.start()
        self.replicas = []
        self.url = self.server.create_database("spiff")

    def env(self, name: str, **extra: str) -> dict[str, str]:
        env = replica_env(self.tmp, name, self.url, ttl=self.ttl, **extra)
        del env["SPIFFCTL_LOCK_URL"]  # no SPIFFCTL_LOCK_URL, no Redis broker: the database holds the lease
        env["SPIFFWORKFLOW_BACKEND_DATABASE_URI"] = self.url
        return env

    def prime(self) -> None:
        """Nothing to prime: a database lease's history lives in the sessions that watched it."""

    def terminate_sessions(self) -> int:
        """Every session of the lease's database ended from the server side; how many."""
        if isinstance(self.server, PrivatePostgres):
            with self.server.connect() as conn:
                rows = conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = 'spiff' AND pid <> pg_backend_pid()"
                ).fetchall()
            return len(rows)
        conn = self.server.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = 'spiff' AND ID <> CONNECTION_ID()"
                )
                ids = [row[0] for row in cur.fetchall()]
                for session in ids:
                    with contextlib.suppress(Exception):
                        cur.execute(f"KILL {int(session)}")
        finally:
            conn.close()
        return len(ids)

    def close(self) -> None:
        for r in self.replicas:
            r.destroy()
        self.server.cleanup()
