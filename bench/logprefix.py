"""Throughput of the all-in-one's output path: lines per second through the log prefixer.

supervisord hands each role's output to the prefixer in chunks; the prefixer splits lines,
scrubs the secrets spiffctl knows (URL passwords, ``*_FILE`` contents, secret-named variables)
and writes ``role | line``. Measured three ways on the same 200 000 lines of typical backend log
(about 110 bytes each, one in twenty holding a database URI), fed in 4 KiB chunks, written to
/dev/null:

* without scrubbing (the prefixer alone);
* scrubbing with the secrets of a typical split install (6 values);
* scrubbing with 200 secrets (a worst case: long alternation).

Each in text mode (``role | line``) and in JSON mode (``SPIFFCTL_LOG_FORMAT=json``: every line
wrapped as an object), plus JSON mode on the backend's own JSON lines (production: each stays one
object with ``role`` added), 6 secrets.

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
from spiffctl.log.child import JsonLines  # noqa: E402
from spiffctl.util.redact import Redactor  # noqa: E402

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


def json_corpus(lines: int) -> bytes:
    """The backend's JSON formatter's lines (its field names), one in twenty holding a database URI."""
    out = []
    for i in range(lines):
        text = "db: postgresql://spiff:Tr0ub4dor#horse@db:5432/spiff" if i % 20 == 0 else f"processed instance {i} ok"
        out.append(
            f'{{"level": "INFO", "message": "{text}", "loggerName": "spiffworkflow_backend", "processName": '
            f'"MainProcess", "processID": 12, "threadName": "MainThread", "threadID": 1400, '
            f'"timestamp": "2026-11-22T10:00:{i % 60:02d}.123Z"}}'
        )
    return ("\n".join(out) + "\n").encode()


def measure(data: bytes, lines: int, scrub: Redactor | None, kind: type[LinePrefixer] = LinePrefixer) -> float:
    sink = os.open(os.devnull, os.O_WRONLY)
    prefixer = kind({"stdout": sink}, scrub=scrub)
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
    backend_json = json_corpus(args.lines)
    for mode, kind in (("text", LinePrefixer), ("json", JsonLines)):
        for label, scrub in (
            ("no scrubbing", None),
            (f"scrubbing, {len(TYPICAL)} secrets", Redactor(TYPICAL)),
            (f"scrubbing, {len(many)} secrets", Redactor(many)),
        ):
            report(f"{mode}, plain lines, {label}", data, args.lines, scrub, kind)
    report(
        f"json, JSON lines, scrubbing, {len(TYPICAL)} secrets", backend_json, args.lines, Redactor(TYPICAL), JsonLines
    )


def report(label: str, data: bytes, lines: int, scrub: Redactor | None, kind: type[LinePrefixer]) -> None:
    best = max(measure(data, lines, scrub, kind) for _ in range(3))
    print(f"{label:<44} {best:>12,.0f} lines/s  ({best * len(data) / lines / 1e6:.1f} MB/s)")


if __name__ == "__main__":
    main()
