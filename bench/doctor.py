"""P5: doctor's wall time when every dependency is unresponsive, against --timeout.

Every endpoint (database, broker, result backend, connector proxy) points at a listener that
swallows the connection: "accept" completes the TCP handshake and then never says a byte; "drop"
keeps the accept queue full so the SYN itself is never answered. Wall time is measured around the
whole process (interpreter start-up included), as an operator or CI job experiences it.

    python bench/doctor.py [--runs 5] [--timeouts 1,2,5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.cli import backend_root, unresponsive_env
from tests.support.ports import Blackhole


def measure(env: dict[str, str], timeout: float) -> tuple[float, int]:
    t0 = time.monotonic()
    p = subprocess.run(
        [sys.executable, "-m", "spiffctl", "doctor", "--json", "--timeout", f"{timeout:g}"],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
    )
    return time.monotonic() - t0, p.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--timeouts", default="1,2,5")
    args = ap.parse_args()
    timeouts = [float(t) for t in args.timeouts.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        backend = backend_root(Path(tmp) / "backend")
        rows = []
        for mode in ("accept", "drop"):
            holes = [Blackhole(mode) for _ in range(4)]  # type: ignore[arg-type]
            try:
                for db in ("postgresql", "mysql"):
                    env = unresponsive_env(backend, db, holes)
                    for timeout in timeouts:
                        samples, codes = [], set()
                        for _ in range(args.runs):
                            wall, code = measure(env, timeout)
                            samples.append(wall)
                            codes.add(code)
                        rows.append((mode, db.replace("postgresql", "postgres"), timeout, samples, codes))
            finally:
                for hole in holes:
                    hole.close()
    print(f"P5 doctor wall time, every dependency unresponsive ({args.runs} runs each; bound = timeout + 0.3 s)")
    print(f"{'listener':<8} {'database':<9} {'timeout':>7} {'median':>7} {'max':>7} {'over':>6} {'bound':>6} exit")
    for mode, db, timeout, samples, codes in rows:
        worst = max(samples)
        verdict = "ok" if worst <= timeout + 0.3 else "MISS"
        exits = ",".join(map(str, sorted(codes)))
        print(
            f"{mode:<8} {db:<9} {timeout:>6g}s {statistics.median(samples):>6.3f}s {worst:>6.3f}s "
            f"{worst - timeout:>+5.2f}s {verdict:>6} {exits}"
        )


if __name__ == "__main__":
    main()
