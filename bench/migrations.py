"""Figures for the schema migration: all-in-one start-up (P8) and a replica arriving mid-migration (P9).

Both use the stand-in bin scripts with ``STANDIN_MIGRATIONS=true`` and the stand-in ``uv`` first on
PATH (tests/standins), whose every ``uv run flask db ...`` first burns ``--app-cpu`` CPU-seconds,
like the real app start (a busy loop on CPU time: under contention it takes longer, as the real
one does). Each run gets a fresh database on the shared PostgreSQL (127.0.0.1:5432, trust), a fresh
copy of the fake backend and its own run folder; every process a run started is killed at its end.

P8  API ready inside ``spiffctl run --role all`` / API ready in ``spiffctl run --role api`` alone,
    Celery on (the worker role runs), ``SPIFFWORKFLOW_BACKEND_UPGRADE_DB=true``. "Ready" is the API
    stand-in listening and answering /v1.0/status (its ``ready`` record), from spiffctl's start.
    The API costs: the upgrade (an app start, ``--app-cpu``, plus ``--upgrade-seconds`` of database
    work) then caches + gunicorn boot (``--api-boot-cpu``): about 1/3 and 2/3 of its start, as
    measured on the real backend. Background and worker run the real scripts' schema wait (``flask
    db current`` + ``flask db heads``, two app starts every 2 s until at head), then boot
    (``--worker-boot-cpu``; the real Background sleeps 100 s before creating its app: no CPU).
    Goal <= 1.25 (the real backend: 1.7 on 2 cores). Also printed: when each role is ready, from
    the start, in both modes (all-in-one must not get worse).
P9  Two API replicas, both ``UPGRADE_DB=true``, on a fresh database: A starts; once A's upgrade is
    applying revisions, B starts. Figure: from the end of A's upgrade (the stand-in ``uv-upgrade``
    ``exit`` record) to B's script start (the API stand-in's ``start`` record). Goal <= 1 s. When B
    runs an upgrade of its own that overlaps A's, there is no figure: the bench says "race" and
    how B's upgrade ended (without a lock, it fails like the real one: UniqueViolation).

Usage: python bench/migrations.py [--runs N] [--only p8|p9] [--app-cpu S] [--api-boot-cpu S] ...
Needs the shared PostgreSQL and Redis (the broker the all-in-one worker checks) like the tests.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.standins import copy_backend, read_records, uv_env  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.shared_services import SHARED_POSTGRES_URL, SHARED_REDIS_URL, unique_name  # noqa: E402

SPIFFCTL = [sys.executable, "-m", "spiffctl"]
MARK = "SPIFFCTL_BENCH_RUN"  # in every process's environment: the sweep at the end finds them by it
REPLICA = "SPIFFCTL_BENCH_REPLICA"


# ------------------------------------------------------------------------------ plumbing


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    import psycopg
    from psycopg import sql

    name = unique_name("bench_migrations")
    with psycopg.connect(SHARED_POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield SHARED_POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(SHARED_POSTGRES_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def marked_pids(mark: str) -> list[int]:
    """Live processes whose environment holds ``MARK=mark`` (ours, whatever re-parented them)."""
    needle = f"{MARK}={mark}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if needle in f.read().split(b"\0"):
                        found.append(int(entry))
            except OSError:
                pass
    return found


class Run:
    """One run: a temporary folder, a fresh backend copy, a record file, the processes it starts."""

    def __init__(self, tmp: Path, database: str, options: dict[str, str]) -> None:
        self.tmp = tmp
        self.mark = uuid.uuid4().hex
        self.record = tmp / "records.jsonl"
        self.backend = copy_backend(tmp / "backend")
        (tmp / "bpmn").mkdir()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("SPIFFWORKFLOW_BACKEND_", "SPIFFCTL_", "STANDIN_"))
        }
        self.env.update(uv_env())
        self.env.update(
            {
                MARK: self.mark,
                "HOME": str(tmp),
                "SPIFFCTL_BACKEND_DIR": str(self.backend),
                "FLASK_SESSION_SECRET_KEY": "bench-session-key",
                "SPIFFWORKFLOW_BACKEND_BPMN_SPEC_ABSOLUTE_DIR": str(tmp / "bpmn"),
                "SPIFFWORKFLOW_BACKEND_DATABASE_URI": database,
                "SPIFFWORKFLOW_BACKEND_UPGRADE_DB": "true",
                "SPIFFWORKFLOW_BACKEND_CELERY_ENABLED": "true",
                "SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL": SHARED_REDIS_URL,
                # One box, one Background: no lease (as bench/allinone.py).
                "SPIFFCTL_LOCK": "off",
                "SPIFFCTL_WAIT_TIMEOUT": "60",
                "STANDIN_RECORD": str(self.record),
                "STANDIN_MIGRATIONS": "true",
                "STANDIN_MAX_LIFETIME": "600",
                **options,
            }
        )

    def start(self, role: str, name: str, **extra: str) -> subprocess.Popen[bytes]:
        env = {
            **self.env,
            "SPIFFCTL_RUN_DIR": str(self.tmp / f"run-{name}"),
            "SPIFFWORKFLOW_BACKEND_PORT": str(free_port()),
            REPLICA: name,
            **extra,
        }
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed with the run folder
        proc = subprocess.Popen(
            [*SPIFFCTL, "run", "--role", role],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def log_tail(self, name: str, lines: int = 15) -> str:
        try:
            text = (self.tmp / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join("      " + line for line in text.splitlines()[-lines:])

    def records(self, *, role: str | None = None, event: str | None = None, replica: str | None = None) -> list:
        return [
            r
            for r in read_records(self.record)
            if (role is None or r["role"] == role)
            and (event is None or r["event"] == event)
            and (replica is None or r["env"].get(REPLICA) == replica)
        ]

    def stop(self) -> None:
        """SIGTERM each spiffctl (the all-in-one stops its roles), then SIGKILL whatever is left."""
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        for _ in range(3):  # a role's stray children (an upgrade still running), wherever they went
            left = marked_pids(self.mark)
            if not left:
                break
            for pid in left:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)


def wait_records(run: Run, proc: subprocess.Popen[bytes], done: Any, timeout: float) -> Any:
    """Poll the record file until ``done(run)`` returns something truthy, spiffctl died, or timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = done(run)
        if result:
            return result
        if proc.poll() is not None:
            return done(run) or None
        time.sleep(0.05)
    return None


# ------------------------------------------------------------------------------ P8


def ready_times(run: Run, t0: float, roles: tuple[str, ...]) -> dict[str, float] | None:
    times = {}
    for role in roles:
        ready = run.records(role=role, event="ready")
        if not ready:
            return None
        times[role] = ready[0]["monotonic"] - t0
    return times


def p8_once(options: dict[str, str], all_in_one: bool) -> dict[str, float]:
    roles = ("api", "background", "worker") if all_in_one else ("api",)
    name = "all" if all_in_one else "api"
    with fresh_database() as database, tempfile.TemporaryDirectory(prefix="spiffctl-bench-") as tmp:
        run = Run(Path(tmp), database, options)
        try:
            t0 = time.monotonic()
            proc = run.start(name, name)
            times = wait_records(run, proc, lambda r: ready_times(r, t0, roles), timeout=240)
            if not times:
                raise SystemExit(f"P8 ({name}): not every role became ready; spiffctl's output:\n{run.log_tail(name)}")
            upgrades = run.records(role="uv-upgrade", event="exit")
            app_starts = len(run.records(event="start", role="uv-current")) + len(
                run.records(event="start", role="uv-heads")
            )
            times["upgrades"] = len(upgrades)
            times["wait_app_starts"] = app_starts
            return times
        finally:
            run.stop()


def p8(args: argparse.Namespace, options: dict[str, str]) -> None:
    alone: list[dict[str, float]] = []
    together: list[dict[str, float]] = []
    for i in range(args.runs):
        # Alternate the order so a drifting machine load does not favour one mode.
        for all_in_one in (False, True) if i % 2 == 0 else (True, False):
            (together if all_in_one else alone).append(p8_once(options, all_in_one))
    api_alone = statistics.median(t["api"] for t in alone)
    api_all = statistics.median(t["api"] for t in together)
    print(
        f"P8 API ready: alone median {api_alone:.2f} s, inside run --role all median {api_all:.2f} s: "
        f"ratio {api_all / api_alone:.2f} (goal <= 1.25; real backend 1.7) over {args.runs} run(s) each"
    )
    print("    per run, alone:  " + ", ".join(f"{t['api']:.2f}" for t in alone))
    print("    per run, all:    " + ", ".join(f"{t['api']:.2f}" for t in together))
    for role in ("api", "background", "worker"):
        values = [t[role] for t in together]
        print(f"    all-in-one {role:<10} ready: median {statistics.median(values):6.2f} s, max {max(values):6.2f} s")
    print(
        f"    all-in-one: {statistics.median(t['wait_app_starts'] for t in together):.0f} schema-wait app starts "
        f"(flask db current/heads) and {statistics.median(t['upgrades'] for t in together):.0f} upgrade(s) per run "
        "(median)"
    )


# ------------------------------------------------------------------------------ P9


def p9_once(options: dict[str, str]) -> dict[str, Any]:
    with fresh_database() as database, tempfile.TemporaryDirectory(prefix="spiffctl-bench-") as tmp:
        run = Run(Path(tmp), database, options)
        try:
            a = run.start("api", "A")
            # B arrives while A is applying revisions (A's first one is done, the rest to go).
            if not wait_records(run, a, lambda r: r.records(role="uv-upgrade", event="revision"), 120):
                raise SystemExit(f"P9: replica A never applied a revision; its output:\n{run.log_tail('A')}")
            b = run.start("api", "B")

            def settled(r: Run) -> bool:
                a_done = bool(r.records(role="uv-upgrade", event="exit", replica="A"))
                b_started = bool(r.records(role="api", event="start", replica="B"))
                b_upgrades = r.records(role="uv-upgrade", replica="B")
                b_upgrade_open = any(x["event"] == "start" for x in b_upgrades) and not any(
                    x["event"] == "exit" for x in b_upgrades
                )
                return a_done and (b_started or b.poll() is not None) and not b_upgrade_open

            wait_records(run, b, settled, 120)
            a_exit = run.records(role="uv-upgrade", event="exit", replica="A")
            if not a_exit:
                raise SystemExit(f"P9: replica A's upgrade did not end; its output:\n{run.log_tail('A')}")
            a_end = a_exit[0]["monotonic"]
            b_start = run.records(role="api", event="start", replica="B")
            b_upgrade_starts = run.records(role="uv-upgrade", event="start", replica="B")
            b_upgrade_exits = run.records(role="uv-upgrade", event="exit", replica="B")
            result: dict[str, Any] = {
                "a_exit_code": a_exit[0]["exit_code"],
                "b_upgrade_codes": [x["exit_code"] for x in b_upgrade_exits],
                "b_upgrades": len(b_upgrade_starts),
            }
            if any(x["monotonic"] < a_end for x in b_upgrade_starts):
                result["race"] = True
                log = (Path(tmp) / "B.log").read_text(errors="replace")
                result["b_error"] = next(
                    (line for line in log.splitlines() if line.startswith("sqlalchemy.exc.")), "(no sqlalchemy error)"
                )
            elif b_start:
                result["delay"] = b_start[0]["monotonic"] - a_end
            else:
                result["b_tail"] = run.log_tail("B")
            return result
        finally:
            run.stop()


def p9(args: argparse.Namespace, options: dict[str, str]) -> None:
    results = [p9_once(options) for _ in range(args.runs)]
    races = [r for r in results if r.get("race")]
    delays = [r["delay"] for r in results if "delay" in r]
    if races:
        codes = sorted({c for r in races for c in r["b_upgrade_codes"]})
        print(
            f"P9 B ran its own upgrade: race, in {len(races)} of {len(results)} run(s) (no figure). "
            f"B's upgrade exit code(s): {codes}; B's error: {races[0]['b_error'][:200]}"
        )
    if delays:
        serial = sum(1 for r in results if "delay" in r and r["b_upgrades"])
        print(
            f"P9 A's upgrade end -> B's script start: median {statistics.median(delays):.3f} s, "
            f"max {max(delays):.3f} s over {len(delays)} run(s) (goal <= 1 s)"
            + (f"; B ran a (no-op) upgrade of its own after A's in {serial} of them" if serial else "")
        )
    for r in results:
        if "b_tail" in r:
            print(f"P9 B never started its script; its output:\n{r['b_tail']}")


# ------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=("p8", "p9"))
    parser.add_argument("--app-cpu", type=float, default=1.5, help="CPU-seconds of each flask app start")
    parser.add_argument("--upgrade-seconds", type=float, default=1.0, help="database work of a full upgrade")
    parser.add_argument("--api-boot-cpu", type=float, default=4.5, help="API: caches + gunicorn boot")
    parser.add_argument("--worker-boot-cpu", type=float, default=3.0, help="Celery worker start")
    parser.add_argument("--p9-upgrade-seconds", type=float, default=8.0, help="P9: A's upgrade (real: 10 s)")
    args = parser.parse_args()

    options = {
        "STANDIN_APP_CPU": str(args.app_cpu),
        "STANDIN_UPGRADE_SECONDS": str(args.upgrade_seconds),
        "STANDIN_API_BOOT_CPU": str(args.api_boot_cpu),
        "STANDIN_WORKER_BOOT_CPU": str(args.worker_boot_cpu),
    }
    print(
        f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}; app start {args.app_cpu} CPU-s, "
        f"upgrade +{args.upgrade_seconds} s, API boot {args.api_boot_cpu} CPU-s, "
        f"worker boot {args.worker_boot_cpu} CPU-s"
    )
    if args.only in (None, "p8"):
        p8(args, options)
    if args.only in (None, "p9"):
        p9(args, {**options, "STANDIN_UPGRADE_SECONDS": str(args.p9_upgrade_seconds)})


if __name__ == "__main__":
    main()
