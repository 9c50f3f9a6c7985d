"""The command-line fuzz run of issue 16, far longer than CI's (tests/test_fuzz.py): generated
environments and argv for run, doctor, healthcheck and status, each a real spiffctl subprocess
against the stand-in backend and the shared services, with a planted secret.

Prints counts: runs, tracebacks, exit 70s (or "internal error"), leaks (any printed form of
the secret), hangs (doctor, healthcheck or status not ending; ``run`` may wait by design and
shows as exit code None); then the exit codes seen. The last four must be 0. Needs the shared services
(PostgreSQL, MariaDB, Redis, RabbitMQ) on their standard ports, as the tests do.

Usage: python bench/fuzz.py [--minutes 5] [--show 3]
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

from tests.support.fuzzing import Case, cases, judge  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--show", type=int, default=3, help="print this many failing cases of each kind")
    args = parser.parse_args()
    deadline = time.monotonic() + args.minutes * 60
    counts: collections.Counter[str] = collections.Counter()
    codes: collections.Counter[str] = collections.Counter()
    shown: collections.Counter[str] = collections.Counter()

    @settings(
        max_examples=200,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(cases())
    def batch(case: Case) -> None:
        if time.monotonic() > deadline:
            return
        verdict = judge(case)
        counts["runs"] += 1
        codes[f"{case.argv[0]} {verdict.code}"] += 1
        for kind, bad in (
            ("tracebacks", verdict.traceback),
            ("exit 70s", verdict.internal),
            ("leaks", verdict.leaked),
            ("hangs", verdict.hung),
        ):
            if bad:
                counts[kind] += 1
                if shown[kind] < args.show:
                    shown[kind] += 1
                    print(f"--- {kind}: {case}\n{verdict.output[-1500:]}", file=sys.stderr)

    started = time.monotonic()
    while time.monotonic() < deadline:
        batch()
    elapsed = time.monotonic() - started
    print(f"{counts['runs']} runs in {elapsed:.0f} s")
    for kind in ("tracebacks", "exit 70s", "leaks", "hangs"):
        print(f"{kind:<11} {counts[kind]}")
    print("exit codes: " + ", ".join(f"{k}: {v}" for k, v in sorted(codes.items())))


if __name__ == "__main__":
    main()
