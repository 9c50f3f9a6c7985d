"""Figures for ``spiffctl run --role all`` with the stand-in bin scripts.

P6: time from SIGTERM (sent to spiffctl, i.e. PID 1 in a container) until the last process of
    the run is gone. Goal < 10 s (docker's SIGKILL). Measured with roles that stop promptly
    and with one role that ignores SIGTERM (then the grace period bounds it).
P7: memory of the supervising processes: PSS (the sum of ``Pss:`` in /proc/<pid>/smaps_rollup,
    so pages shared between them count once in the total) with RSS beside it, per process and in
    total, with ``SPIFFCTL_LOCK=off`` and with the Background under a Redis lease. Supervising:
    every process of the run that is spiffctl's (supervisord in PID 1, the orphan watcher, a
    role's resident spiffctl runner, the lease watchdog), none of the roles' own scripts or app
    processes (the Background's warm child is its role process). Goal <= 45 MB PSS with the lease.

Usage: python bench/allinone.py [--runs N] [--grace S] [--only-memory]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.standins import BACKEND_TEMPLATE as BACKEND  # noqa: E402
from tests.standins import at_head  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.procs import children_map, pid_alive  # noqa: E402
from tests.support.shared_services import SHARED_REDIS_URL, unique_name  # noqa: E402

GOAL_PSS_MB = 45
# What a supervising process's command line says it is, first match wins; a process of the run
# that matches none is a role's own (a script, the app, the warm child), not counted.
SUPERVISING = (
    ("spiffctl.allinone.pid1", "pid1 (supervisord)"),
    ("spiffctl-orphans", "orphan watcher"),
    ("spiffctl.lease.watchdog", "lease watchdog"),
    ("spiffctl.lease.resident background", "Background runner (resident)"),
    ("spiffctl run --role", "a role's spiffctl runner"),
)


def tree(root: int, kids: dict[int, list[int]]) -> set[int]:
    out, todo = set(), [root]
    while todo:
        pid = todo.pop()
        out.add(pid)
        todo.extend(kids.get(pid, []))
    return out


def rollup_kb(pid: int) -> tuple[int, int]:
    """(PSS, RSS) in KiB from /proc/<pid>/smaps_rollup; zeros for a process already gone."""
    fields = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in ("Pss", "Rss"):
                    fields[name] = int(rest.split()[0])
    except OSError:
        pass
    return fields.get("Pss", 0), fields.get("Rss", 0)


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def supervising_name(pid: int) -> str | None:
    line = cmdline(pid)
    for needle, name in SUPERVISING:
        if needle in line:
            return name
    return None


def process_infos(run_dir: Path) -> list[dict]:
    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(None, None, serverurl=f"unix://{run_dir / 'supervisor.sock'}")
    return xmlrpc.client.ServerProxy("http://localhost", transport=transport).supervisor.getAllProcessInfo()


def wait_for_watchdog(root: int, limit: float = 60) -> None:
    """A fresh lease is not proven yet: the Background starts after a wait of about one TTL."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if any(supervising_name(pid) == "lease watchdog" for pid in tree(root, children_map())):
            return
        time.sleep(0.2)
    raise SystemExit("the Background never started under the lease")


def run_env(tmp: Path, grace: int, *, ignore_term: bool, measure_memory: bool, stalled: bool, lease: bool) -> dict:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp),
        "SPIFFCTL_RUN_DIR": str(tmp / "run"),
        "SPIFFCTL_BACKEND_DIR": str(BACKEND),
        "FLASK_SESSION_SECRET_KEY": "bench-session-key",
        "SPIFFWORKFLOW_BACKEND_BPMN_SPEC_ABSOLUTE_DIR": str(tmp),
        "SPIFFWORKFLOW_BACKEND_DATABASE_URI": f"sqlite:///{tmp / 'db.sqlite3'}",
        "SPIFFWORKFLOW_BACKEND_CELERY_ENABLED": "true",
        "SPIFFCTL_LOCK": "off",
        "SPIFFCTL_STOP_GRACE": str(grace),
        "SPIFFWORKFLOW_BACKEND_PORT": str(free_port()),
        "STANDIN_WORKER_SPAWN_CHILD": "true",
    }
    if measure_memory:
        # As in production: every role waits for its dependencies and the schema, so the runner
        # that stays resident has been through those checks.
        at_head(env["SPIFFWORKFLOW_BACKEND_DATABASE_URI"])
        env["SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL"] = SHARED_REDIS_URL
    if lease:
        env.update(SPIFFCTL_LOCK="on", SPIFFCTL_LOCK_URL=SHARED_REDIS_URL, SPIFFCTL_LOCK_KEY=unique_name("bench"))
    if ignore_term:
        env["STANDIN_API_IGNORE_TERM"] = "true"
    if stalled:
        env.update(STANDIN_PRINT="chatty " * 150, STANDIN_PRINT_TIMES="2000")
    return env


def wait_running(run_dir: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            infos = process_infos(run_dir)
            if len(infos) == 3 and all(i["statename"] == "RUNNING" for i in infos):
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("the roles did not all reach RUNNING")


def memory_of(everything: set[int]) -> dict:
    """PSS and RSS of each supervising process (in :data:`SUPERVISING` order); the roles' PSS in all."""
    names = {pid: supervising_name(pid) for pid in sorted(everything)}
    order = [name for _, name in SUPERVISING]
    found = sorted((pid for pid, name in names.items() if name), key=lambda pid: order.index(str(names[pid])))
    return {
        "supervision": {pid: (*rollup_kb(pid), names[pid]) for pid in found},
        "roles_kb": sum(rollup_kb(pid)[0] for pid, name in names.items() if name is None),
    }


def one_run(
    tmp: Path,
    grace: int,
    ignore_term: bool,
    measure_memory: bool,
    stalled: bool = False,
    kill: bool = False,
    lease: bool = False,
) -> tuple[float, dict]:
    """``stalled``: chatty roles, stdout and stderr pipes nobody reads. ``kill``: SIGKILL, not SIGTERM.
    ``lease``: the Background under a lease in the shared Redis (a key of its own), not ``SPIFFCTL_LOCK=off``."""
    env = run_env(tmp, grace, ignore_term=ignore_term, measure_memory=measure_memory, stalled=stalled, lease=lease)
    out = subprocess.PIPE if stalled else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, "-m", "spiffctl", "run", "--role", "all", *([] if measure_memory else ["--no-wait"])],
        env=env,
        stdout=out,
        stderr=out,
        start_new_session=True,
    )
    try:
        wait_running(tmp / "run")
        if lease:
            wait_for_watchdog(proc.pid)
        time.sleep(2.0)  # let every role finish its start-up and settle
        everything = tree(proc.pid, children_map())
        memory = memory_of(everything) if measure_memory else {}
        started = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
        while any(pid_alive(pid) for pid in everything):
            if proc.poll() is not None and not any(pid_alive(pid) for pid in everything):
                break
            time.sleep(0.005)
        elapsed = time.monotonic() - started
        proc.wait(5)
        return elapsed, memory
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def print_memory(title: str, memory: dict, goal: str) -> None:
    pss = sum(p for p, _, _ in memory["supervision"].values())
    rss = sum(r for _, r, _ in memory["supervision"].values())
    count = len(memory["supervision"])
    print(f"P7 supervision {title}: PSS {pss / 1024:.1f} MB (RSS {rss / 1024:.1f} MB) in {count} processes ({goal})")
    for pid, (p, r, name) in memory["supervision"].items():
        print(f"    {name}: PSS {p / 1024:.1f} MB, RSS {r / 1024:.1f} MB (pid {pid})")
    print(f"    (roles' own processes, not counted: PSS {memory['roles_kb'] / 1024:.1f} MB of stand-ins)")


def measure_memory(grace: int) -> None:
    for title, lease in (("with SPIFFCTL_LOCK=off", False), ("with a Redis lease", True)):
        with tempfile.TemporaryDirectory(prefix="spiffctl-bench-") as tmp:
            _, memory = one_run(Path(tmp), grace, ignore_term=False, measure_memory=True, lease=lease)
        print_memory(title, memory, f"goal <= {GOAL_PSS_MB} MB PSS" if lease else "for comparison")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--grace", type=int, default=8)
    parser.add_argument("--only-memory", action="store_true", help="P7 alone")
    args = parser.parse_args()
    if args.only_memory:
        measure_memory(args.grace)
        return

    prompt = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="spiffctl-bench-") as tmp:
            elapsed, _ = one_run(Path(tmp), args.grace, ignore_term=False, measure_memory=False)
            prompt.append(elapsed)
    with tempfile.TemporaryDirectory(prefix="spiffctl-bench-") as tmp:
        stubborn, _ = one_run(Path(tmp), args.grace, ignore_term=True, measure_memory=False)
    with tempfile.TemporaryDirectory(prefix="spiffctl-bench-") as tmp:
        stalled, _ = one_run(Path(tmp), args.grace, ignore_term=False, measure_memory=False, stalled=True)
    with tempfile.TemporaryDirectory(prefix="spiffctl-bench-") as tmp:
        killed, _ = one_run(Path(tmp), args.grace, ignore_term=False, measure_memory=False, kill=True)

    print(
        f"P6 SIGTERM -> last process gone, roles stop promptly: median {statistics.median(prompt):.3f} s, "
        f"max {max(prompt):.3f} s over {len(prompt)} runs (goal < 10 s)"
    )
    print(f"P6 with a role ignoring SIGTERM (grace {args.grace} s, then SIGKILL): {stubborn:.3f} s (goal < 10 s)")
    print(f"P6 with stdout and stderr never read, chatty roles: {stalled:.3f} s (goal: within the grace)")
    print(f"P6 kill -9 of the all-in-one -> last role gone (the orphan watcher): {killed:.3f} s (goal < grace)")
    measure_memory(args.grace)


if __name__ == "__main__":
    main()
