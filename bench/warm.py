"""Figures for the warm standby (issue 17): real spiffctl replicas, a private Redis, the stand-in backend.

    python bench/warm.py [--ttl 5] [--runs 3] [--script-runs 1] [--script-sleep 100] [--app-cpu 1]

W1  scheduler gap after the holder's spiffctl is SIGKILLed: the holder's last scheduler tick ->
    the standby's scheduler start (goal <= TTL + 2 s), warm vs script.
W2  the same after the holder gets SIGTERM (goal <= 2 s), warm vs script.
W3  RSS of a warm standby's child (the loaded stand-in app; the real app: docs/figures.md).
W4  all-in-one (API + Background, SQLite): the API's "ready" -> the Background's scheduler start,
    without a lease (SPIFFCTL_LOCK=off) and with the lease in the SQLite database (default TTL).

The stand-in script keeps the real one's shape (tests/support/background_standin.py ``STANDIN_SCRIPT_SHAPE``):
a schema wait of two app starts, a sleep of ``--script-sleep`` seconds (the real script's 100 s by
default), one more app start; an app start burns ``--app-cpu`` CPU-seconds (the real one: about 5 s
on these machines). Times come from the stand-in scheduler's own records (monotonic clock).
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.poll import wait_until
from tests.support.replicas import Cluster, Replica, overlap


def pair(cluster: Cluster, mode: str, extra: dict[str, str]) -> tuple[Replica, Replica]:
    """Replica ``a`` holding the lease with its scheduler running, ``b`` its (warm) standby."""
    cluster.prime()
    a = cluster.start("a", SPIFFCTL_BACKGROUND_START=mode, **extra)
    wait_until(lambda: cluster.workers_of("a"), 2 * cluster.ttl + 300, what=cluster.logs)
    b = cluster.start("b", SPIFFCTL_BACKGROUND_START=mode, **extra)
    loaded = "warm standby: the app is loaded" if mode == "warm" else "standby: the Background lease is held by"
    wait_until(lambda: loaded in b.log(), 120, what=cluster.logs)
    return a, b


def gap(ttl: float, mode: str, sig: int, extra: dict[str, str]) -> tuple[float, float]:
    """(seconds from the holder's last tick to the standby's scheduler start, overlap seconds)."""
    with tempfile.TemporaryDirectory(prefix="bench-warm-") as tmp:
        cluster = Cluster(Path(tmp), ttl=ttl, warm=True)
        try:
            a, _ = pair(cluster, mode, extra)
            a.signal(sig)
            wait_until(lambda: cluster.workers_of("b"), 3 * ttl + 600, what=cluster.logs)
            [old] = cluster.workers_of("a")
            [new] = cluster.workers_of("b")
            return new.start - old.times[-1], overlap(cluster.runs())
        finally:
            cluster.close()


def standby_rss(ttl: float, extra: dict[str, str]) -> int:
    """KiB resident in the warm standby's child (the loaded app)."""
    with tempfile.TemporaryDirectory(prefix="bench-warm-") as tmp:
        cluster = Cluster(Path(tmp), ttl=ttl, warm=True)
        try:
            _, b = pair(cluster, "warm", extra)
            [child] = b.warm_children()
            time.sleep(1)  # settled after its report
            return vm_rss(child)
        finally:
            cluster.close()


def all_in_one(lease_off: bool, extra: dict[str, str]) -> float:
    """Seconds from the API's ready record to the Background's scheduler start, in one all-in-one."""
    from tests.standins import read_records
    from tests.support.allinone import running, scheduler_starts, warm_env

    with tempfile.TemporaryDirectory(prefix="bench-warm-") as tmp:
        root = Path(tmp)
        env = warm_env(root, **({"SPIFFCTL_LOCK": "off"} if lease_off else {}), **extra)
        with running(root, env, "--wait-timeout", "60"):
            wait_until(lambda: scheduler_starts(root), 120)
        [ready] = [r for r in read_records(root / "record") if r["role"] == "api" and r["event"] == "ready"]
        return scheduler_starts(root)[0] - float(ready["monotonic"])


def vm_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ttl", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3, help="runs per warm figure")
    parser.add_argument("--script-runs", type=int, default=1, help="runs per script figure (each >= the sleep)")
    parser.add_argument("--script-sleep", type=float, default=100.0, help="the stand-in script's sleep, seconds")
    parser.add_argument("--app-cpu", type=float, default=1.0, help="CPU-seconds per stand-in app start")
    parser.add_argument("--only-all-in-one", action="store_true", help="only W4")
    args = parser.parse_args()
    ttl = args.ttl
    extra = {"STANDIN_SCRIPT_SLEEP": repr(args.script_sleep), "STANDIN_CREATE_APP_CPU": repr(args.app_cpu)}
    print(f"TTL {ttl:g} s, stand-in app start {args.app_cpu:g} CPU-s, script sleep {args.script_sleep:g} s")

    def show(name: str, mode: str, sig: int, goal: float, runs: int) -> None:
        values = [gap(ttl, mode, sig, extra) for _ in range(runs)]
        times = [t for t, _ in values]
        print(
            f"{name} {mode:6} median {statistics.median(times):7.2f} s  max {max(times):7.2f} s  "
            f"(goal <= {goal:g} s, {runs} runs; overlap {sum(o for _, o in values):.3f} s)",
            flush=True,
        )

    for mode, runs in () if args.only_all_in_one else (("warm", args.runs), ("script", args.script_runs)):
        show("W1 scheduler gap after holder SIGKILL:", mode, signal.SIGKILL, ttl + 2, runs)
        show("W2 scheduler gap after holder SIGTERM:", mode, signal.SIGTERM, 2, runs)
    if not args.only_all_in_one:
        print(f"W3 RSS of a warm standby's child (stand-in app): {standby_rss(ttl, extra) / 1024:.1f} MiB")
    for lease_off in (True, False):
        seconds = statistics.median(all_in_one(lease_off, extra) for _ in range(args.runs))
        lease = "no lease (SPIFFCTL_LOCK=off)" if lease_off else "lease in SQLite, TTL 15 s"
        print(f"W4 all-in-one, API ready -> scheduler start, {lease}: median {seconds:.2f} s ({args.runs} runs)")


if __name__ == "__main__":
    main()
