"""H2: what the API's port-ownership check adds to `spiffctl healthcheck --role api`.

The check reads /proc/net/tcp{,6}, every process's stat (to build the API's process tree) and the
tree's fds; its cost grows with the number of processes on the host (in a container: a handful).
Prints the median of --runs calls, in process, for the socket held by this process's own tree.

    python bench/listeners.py [--runs 50]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spiffctl import listeners


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    runs = parser.parse_args().runs
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            assert listeners.stranger(port, os.getpid()) is None
            times.append(time.perf_counter() - t0)
    processes = sum(1 for e in os.listdir("/proc") if e.isdigit())
    print(f"port ownership check: {statistics.median(times) * 1000:.1f} ms median of {runs} ({processes} processes)")


if __name__ == "__main__":
    main()
