"""Figures for the Background lease, measured with real spiffctl replicas and private servers.

    python bench/lease.py [--store redis|postgres|mysql] [--ttl 3] [--runs 3] [--chaos 60] [--seed 1]

``--store`` picks where the lease lives: a private Redis (default), or a private PostgreSQL or
MariaDB that is also the backend's database (no Redis at all, the lease in the database).

P3  failover after the holder's spiffctl is SIGKILLed: kill -> the standby's script starts
    (goal <= TTL + 2 s).
P4  handoff after the holder gets SIGTERM: signal -> the standby's script starts (goal <= 2 s).
Q   (database stores) the queries per second the lease costs the database with one holder and
    one standby at the default TTL (15 s), from the server's own counters over 30 s.
R1  seconds during which two scripts ran at once, over a randomized fault run with three
    replicas (goal 0), and separately for a whole replica frozen (renewer, watchdog and script,
    like ``docker pause``) for 2 TTL (goal < 1 s: nothing of it can run while frozen, and the
    watchdog kills the script as soon as they are thawed).

Times come from the stand-in script's own records (monotonic clock, shared by all processes).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.poll import wait_until
from tests.support.replicas import DB_FAULTS, REDIS_FAULTS, Cluster, DbCluster, alive_workers, chaos, overlap

STORE = "redis"


def make_cluster(tmp: Path, ttl: float) -> Cluster:
    return Cluster(tmp, ttl=ttl) if STORE == "redis" else DbCluster(tmp, STORE, ttl=ttl)


def failover(ttl: float, sig: int) -> tuple[float, float]:
    """(seconds from the signal to the standby's script start, overlap seconds)."""
    with tempfile.TemporaryDirectory(prefix="bench-lease-") as tmp:
        cluster = make_cluster(Path(tmp), ttl)
        try:
            a, _ = cluster.holder_and_standby()
            sent = time.monotonic()
            a.signal(sig)
            wait_until(lambda: cluster.workers_of("b"), 3 * ttl + 5, what=cluster.logs)
            started = cluster.workers_of("b")[0].start
            return started - sent, overlap(cluster.runs())
        finally:
            cluster.close()


def frozen_replica(ttl: float) -> float:
    """Seconds the old script ran after being thawed while the standby held the lease."""
    with tempfile.TemporaryDirectory(prefix="bench-lease-") as tmp:
        cluster = make_cluster(Path(tmp), ttl)
        try:
            a, _ = cluster.holder_and_standby()
            a.signal_all(signal.SIGSTOP)
            frozen = time.monotonic()
            wait_until(lambda: cluster.workers_of("b"), 3 * ttl + 5, what=cluster.logs)
            time.sleep(max(0.0, frozen + 2 * ttl - time.monotonic()))
            [old] = cluster.workers_of("a")
            a.signal_all(signal.SIGCONT)
            thawed = time.monotonic()
            # The records cannot see this: a worker killed right after thawing may write no tick.
            with contextlib.suppress(TimeoutError):  # at worst it ran the whole 5 s: that is the figure
                wait_until(lambda: old.pid not in alive_workers(cluster.runs()), 5, interval=0.001)
            ran_on = time.monotonic() - thawed
            return max(ran_on, overlap(cluster.runs()))
        finally:
            cluster.close()


def chaos_run(ttl: float, seconds: float, seed: int) -> tuple[float, int, int]:
    with tempfile.TemporaryDirectory(prefix="bench-lease-") as tmp:
        cluster = make_cluster(Path(tmp), ttl)
        try:
            faults = chaos(cluster, seconds, seed, REDIS_FAULTS if STORE == "redis" else DB_FAULTS)
            with contextlib.suppress(TimeoutError):  # the overlap below is the figure, settled or not
                wait_until(lambda: len(alive_workers(cluster.runs())) == 1, 4 * ttl)
            runs = cluster.runs()
            return overlap(runs), len(faults), len(runs)
        finally:
            cluster.close()


def queries_per_second(seconds: float = 30.0) -> float:
    """Statements the lease sends to the database per second: one holder, one standby, TTL 15 s."""
    with tempfile.TemporaryDirectory(prefix="bench-lease-") as tmp:
        cluster = DbCluster(Path(tmp), STORE, ttl=15.0)
        try:
            cluster.holder_and_standby()
            before = statements(cluster)
            time.sleep(seconds)
            return (statements(cluster) - before - 1) / seconds  # minus the counter's own query
        finally:
            cluster.close()


def statements(cluster: DbCluster) -> int:
    if STORE == "postgres":
        with cluster.server.connect() as conn:
            row = conn.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'spiff'")
            return int(row.fetchone()[0])
    conn = cluster.server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS LIKE 'Questions'")
            return int(cur.fetchone()[1])
    finally:
        conn.close()


def main() -> None:
    global STORE
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", choices=["redis", "postgres", "mysql"], default="redis")
    parser.add_argument("--ttl", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chaos", type=float, default=60.0, help="seconds of random faults")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--queries-only", action="store_true", help="database stores: only the Q figure")
    args = parser.parse_args()
    ttl = args.ttl
    STORE = args.store
    print(f"lease in {STORE}")
    if args.queries_only:
        print(f"Q  lease statements per second, one holder + one standby, TTL 15 s: {queries_per_second():.1f}")
        return

    p3 = [failover(ttl, signal.SIGKILL) for _ in range(args.runs)]
    p4 = [failover(ttl, signal.SIGTERM) for _ in range(args.runs)]
    frozen = frozen_replica(ttl)
    r1, faults, scripts = chaos_run(ttl, args.chaos, args.seed)

    def show(name: str, values: list[tuple[float, float]], goal: float) -> None:
        times = [t for t, _ in values]
        print(
            f"{name} median {statistics.median(times):.2f} s  max {max(times):.2f} s  "
            f"(goal <= {goal:g} s, TTL {ttl:g} s, {len(times)} runs; overlap {sum(o for _, o in values):.3f} s)"
        )

    show("P3 failover after holder SIGKILL:", p3, ttl + 2)
    show("P4 handoff after holder SIGTERM: ", p4, 2)
    print(f"R1 overlap in chaos: {r1:.3f} s over {args.chaos:g} s, {faults} faults, {scripts} script starts (goal 0)")
    print(f"R1 overlap, whole replica frozen 2 TTL then thawed: {frozen:.3f} s (goal < 1 s)")
    if STORE != "redis":
        print(f"Q  lease statements per second, one holder + one standby, TTL 15 s: {queries_per_second():.1f}")


if __name__ == "__main__":
    main()
