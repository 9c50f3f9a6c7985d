"""H1: `spiffctl healthcheck --role worker` wall time: healthy, frozen (SIGSTOP) and dead worker.

The worker is `spiffctl run --role worker` with the stand-in script exec'ing a real Celery worker
(one pool process) on a private Redis, exactly as the tests run it; the healthcheck pings it with
Celery from the stand-in backend's venv. Wall time is measured around the whole process
(interpreter start-up included), as Docker or the kubelet experiences it; median of --runs.

    python bench/healthcheck.py [--runs 5]
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
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.cli import celery_worker
from tests.support.servers.redis import PrivateRedis


def measure(env: dict[str, str]) -> tuple[float, int, str]:
    t0 = time.monotonic()
    p = subprocess.run(
        [sys.executable, "-m", "spiffctl", "healthcheck", "--role", "worker"],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
    )
    return time.monotonic() - t0, p.returncode, p.stdout.strip()


def sample(env: dict[str, str], runs: int) -> tuple[list[float], set[int], str]:
    results = [measure(env) for _ in range(runs)]
    lines = Counter(r[2] for r in results)
    shown = " | ".join(f"{n}x {line}" if len(lines) > 1 else line for line, n in lines.most_common())
    return [r[0] for r in results], {r[1] for r in results}, shown


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    rows = []
    redis = PrivateRedis()
    redis.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = Path(tmp) / "run"
            run_dir.mkdir(mode=0o700)
            with celery_worker(Path(tmp), run_dir, redis.url) as (worker, env):
                rows.append(("healthy", *sample(env, args.runs)))
                os.killpg(worker.pid, signal.SIGSTOP)
                try:
                    rows.append(("frozen (SIGSTOP)", *sample(env, args.runs)))
                finally:
                    os.killpg(worker.pid, signal.SIGCONT)
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
                rows.append(("dead (no ping needed)", *sample(env, args.runs)))
    finally:
        redis.cleanup()
    print(f"{'worker':<24} {'median':>8} {'max':>8}  exit  line")
    for name, samples, codes, line in rows:
        exits = ",".join(map(str, sorted(codes)))
        print(f"{name:<24} {statistics.median(samples):>7.3f}s {max(samples):>7.3f}s  {exits:<4}  {line}")


if __name__ == "__main__":
    main()
