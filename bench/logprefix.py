"""Throughput of the all-in-one's output path: lines per second through the log prefixer.

supervisord hands each role's output to the prefixer in chunks; the prefixer splits lines,
scrubs the secrets spiffctl knows (URL passwords, ``*_FILE`` contents, secret-named variables)
and writes ``role | line``. Measured three ways on the same 200 000 lines of typical backend log
(about 110 bytes each, one in twenty holding a database URI), fed in 4 KiB chunks, written to
/dev/null:

* without scrubbing (the prefixer alone);
* scrubbing with the secrets of a typical split install (6 values);
* scrubbing with 200 secrets (a worst case: long alternation).

Usage: python bench/logprefix.py [--lines N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spiffctl.allinone.logprefix import LinePrefixer  # noqa: E402
from spiffctl.redact import Redactor  # noqa: E402

TYPICAL = [
    "Tr0ub4dor#horse",
    "flask-session-secret-key-0123456789",
    "brokerpw-7731",
    "connector-token-abcdef",
    "s3-secret-access-key-xyz",
    "openid-client-secret-42",
]


def corpus(lines: int) -> bytes:
    out = []
    for i in range(lines):
        if i % 20 == 0:
            out.append(f"[2026-11-22 10:00:{i % 60:02d},123] INFO db: postgresql://spiff:Tr0ub4dor#horse@db:5432/spiff")
        else:
            out.append(f"[2026-11-22 10:00:{i % 60:02d},123] INFO spiffworkflow_backend: processed instance {i} ok")
    return ("\n".join(out) + "\n").encode()


def measure(data: bytes, lines: int, scrub: Redactor | None) -> float:
    sink = os.open(os.devnull, os.O_WRONLY)
    prefixer = LinePrefixer({"stdout": sink}, scrub=scrub)
    t0 = time.perf_counter()
    for i in range(0, len(data), 4096):
        prefixer.feed("api", "stdout", data[i : i + 4096])
    prefixer.flush("api")
    elapsed = time.perf_counter() - t0
    os.close(sink)
    return lines / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=200_000)
    args = parser.parse_args()
    data = corpus(args.lines)
    many = TYPICAL + [f"generated-secret-{i:04d}-value" for i in range(194)]
    for label, scrub in (
        ("no scrubbing", None),
        (f"scrubbing, {len(TYPICAL)} secrets", Redactor(TYPICAL)),
        (f"scrubbing, {len(many)} secrets", Redactor(many)),
    ):
        best = max(measure(data, args.lines, scrub) for _ in range(3))
        print(f"{label:<26} {best:>12,.0f} lines/s  ({best * len(data) / args.lines / 1e6:.1f} MB/s)")


if __name__ == "__main__":
    main()
