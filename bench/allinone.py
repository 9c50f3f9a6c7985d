"""Figures for ``spiffctl run --role all`` with the stand-in bin scripts.

P6: time from SIGTERM (sent to spiffctl, i.e. PID 1 in a container) until the last process of
    the run is gone. Goal < 10 s (docker's SIGKILL). Measured with roles that stop promptly
    and with one role that ignores SIGTERM (then the grace period bounds it).
P7: resident memory (VmRSS from /proc) of the supervision processes: every process of the run
    except the roles' own process trees. Goal <= 60 MB.

Usage: python bench/allinone.py [--runs N] [--grace S]
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
from tests.support.ports import free_port  # noqa: E402
from tests.support.procs import children_map, pid_alive  # noqa: E402


def tree(root: int, kids: dict[int, list[int]]) -> set[int]:
    out, todo = set(), [root]
    while todo:
        pid = todo.pop()
        out.add(pid)
        todo.extend(kids.get(pid, []))
    return out


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:90]
    except OSError:
        return "?"


def process_infos(run_dir: Path) -> list[dict]:
    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(None, None, serverurl=f"unix://{run_dir / 'supervisor.sock'}")
    return xmlrpc.client.ServerProxy("http://localhost", transport=transport).supervisor.getAllProcessInfo()


def one_run(
    tmp: Path, grace: int, ignore_term: bool, measure_memory: bool, stalled: bool = False, kill: bool = False
) -> tuple[float, dict]:
    """``stalled``: chatty roles, stdout and stderr pipes nobody reads. ``kill``: SIGKILL, not SIGTERM."""
    run_dir = tmp / "run"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp),
        "SPIFFCTL_RUN_DIR": str(run_dir),
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
    if ignore_term:
        env["STANDIN_API_IGNORE_TERM"] = "true"
    if stalled:
        env.update(STANDIN_PRINT="chatty " * 150, STANDIN_PRINT_TIMES="2000")
    out = subprocess.PIPE if stalled else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, "-m", "spiffctl", "run", "--role", "all", "--no-wait"],
        env=env,
        stdout=out,
        stderr=out,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        infos: list[dict] = []
        while time.monotonic() < deadline:
            try:
                infos = process_infos(run_dir)
                if len(infos) == 3 and all(i["statename"] == "RUNNING" for i in infos):
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise SystemExit("the roles did not all reach RUNNING")
        time.sleep(2.0)  # let every role finish its start-up and settle
        kids = children_map()
        everything = tree(proc.pid, kids)
        roles: set[int] = set()
        for info in infos:
            roles |= tree(info["pid"], kids)
        supervision = sorted(everything - roles)
        memory = {}
        if measure_memory:
            memory = {
                "supervision": {pid: (rss_kb(pid), cmdline(pid)) for pid in supervision},
                "roles_kb": sum(rss_kb(pid) for pid in roles),
            }
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--grace", type=int, default=8)
    args = parser.parse_args()

    prompt, memory = [], {}
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="spiffctl-bench-") as tmp:
            elapsed, mem = one_run(Path(tmp), args.grace, ignore_term=False, measure_memory=i == 0)
            prompt.append(elapsed)
            memory = memory or mem
    with tempfile.TemporaryDirectory(prefix="spiffctl-bench-") as tmp:
        stubborn, _ = one_run(Path(tmp), args.grace, ignore_term=True, measure_memory=False)
    with tempfile.TemporaryDirectory(prefix="spiffctl-bench-") as tmp:
        stalled, _ = one_run(Path(tmp), args.grace, ignore_term=False, measure_memory=False, stalled=True)
    with tempfile.TemporaryDirectory(prefix="spiffctl-bench-") as tmp:
        killed, _ = one_run(Path(tmp), args.grace, ignore_term=False, measure_memory=False, kill=True)

    total_kb = sum(kb for kb, _ in memory["supervision"].values())
    print(
        f"P6 SIGTERM -> last process gone, roles stop promptly: median {statistics.median(prompt):.3f} s, "
        f"max {max(prompt):.3f} s over {len(prompt)} runs (goal < 10 s)"
    )
    print(f"P6 with a role ignoring SIGTERM (grace {args.grace} s, then SIGKILL): {stubborn:.3f} s (goal < 10 s)")
    print(f"P6 with stdout and stderr never read, chatty roles: {stalled:.3f} s (goal: within the grace)")
    print(f"P6 kill -9 of the all-in-one -> last role gone (the orphan watcher): {killed:.3f} s (goal < grace)")
    print(f"P7 supervision RSS: {total_kb / 1024:.1f} MB in {len(memory['supervision'])} process(es) (goal <= 60 MB)")
    for pid, (kb, cmd) in memory["supervision"].items():
        print(f"    pid {pid}: {kb / 1024:.1f} MB  {cmd}")
    print(f"    (roles' own processes, not counted: {memory['roles_kb'] / 1024:.1f} MB of stand-ins)")


if __name__ == "__main__":
    main()
