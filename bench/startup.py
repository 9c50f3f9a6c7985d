"""P1 and P2: what spiffctl adds to a role's start.

P1  median wall time of ``spiffctl run --role api`` until the stand-in script has run, minus the
    same for executing the script directly, with PostgreSQL up (goal <= 100 ms).
P2  time from a late database becoming ready to the script starting (goal <= 0.5 s at p95).
    "Ready" is the instant a loopback forwarder to the shared PostgreSQL starts listening, so
    the moment is exact; the script stamps the wall clock as its first action.

W   the --wait-timeout bound: ``run --role worker --wait-timeout 1`` against a dependency that
    accepts connections and never answers, or swallows packets, for each probe kind: how far past
    the timeout spiffctl exits (goal <= 0.3 s; libpq alone never gives up in less than 2 s).

Usage: python bench/startup.py [--runs N] [--pg URL]
Needs the shared PostgreSQL (127.0.0.1:5432, trust) like the tests.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SPIFFCTL = [sys.executable, "-m", "spiffctl"]
if shutil.which("spiffctl"):
    SPIFFCTL = [shutil.which("spiffctl") or "spiffctl"]


def make_backend(root: Path) -> Path:
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    script = bin_dir / "boot_server_in_docker"
    script.write_text('#!/bin/sh\ndate +%s.%N > "$STAMP"\n')
    script.chmod(0o755)
    return script


def base_env(pg: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPIFFWORKFLOW_BACKEND_", "SPIFFCTL_"))}
    env.update(
        FLASK_SESSION_SECRET_KEY="bench",
        SPIFFWORKFLOW_BACKEND_BPMN_SPEC_ABSOLUTE_DIR="/tmp",
        SPIFFWORKFLOW_BACKEND_DATABASE_URI=pg,
    )
    return env


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def p1(root: Path, script: Path, pg: str, runs: int) -> tuple[float, float, float]:
    env = {**base_env(pg), "STAMP": str(root / "stamp")}
    via = [*SPIFFCTL, "run", "--role", "api", "--backend-dir", str(root)]
    for _ in range(3):  # warm the page cache and .pyc files
        timed(via, env)
        timed([str(script)], env)
    direct = [timed([str(script)], env) for _ in range(runs)]
    spiff = [timed(via, env) for _ in range(runs)]
    d, s = statistics.median(direct), statistics.median(spiff)
    return s - d, s, d


class Forwarder:
    """A loopback TCP forwarder that does not listen until :meth:`open` (a database 'coming up')."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.sock: socket.socket | None = None

    def open(self) -> float:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        ready = time.time()
        self.sock = sock
        threading.Thread(target=self._accept, daemon=True).start()
        return ready

    def _accept(self) -> None:
        assert self.sock is not None
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        if self.sock:
            self.sock.close()


def p2(root: Path, runs: int, delay: float) -> list[float]:
    out = []
    for i in range(runs):
        fwd = Forwarder(("127.0.0.1", 5432))
        stamp = root / f"stamp{i}"
        env = {
            **base_env(f"postgresql://postgres@127.0.0.1:{fwd.port}/postgres"),
            "STAMP": str(stamp),
        }
        proc = subprocess.Popen(
            [*SPIFFCTL, "run", "--role", "api", "--backend-dir", str(root), "--wait-timeout", "30"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay + (i % 5) * 0.037)  # vary the phase against the backoff schedule
        ready = fwd.open()
        proc.wait(timeout=30)
        started = float(stamp.read_text())
        out.append(started - ready)
        fwd.close()
    return out


def wait_bound(root: Path, timeout: float = 1.0) -> list[tuple[str, str, float]]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.support.ports import Blackhole

    out = []
    for mode in ("accept", "drop"):
        for kind, url in (
            ("postgres", "postgresql://u:p@127.0.0.1:{port}/db"),
            ("mysql", "mysql://u:p@127.0.0.1:{port}/db"),
            ("redis", "redis://127.0.0.1:{port}/0"),
            ("amqp", "amqp://guest:guest@127.0.0.1:{port}//"),
        ):
            with Blackhole(mode) as hole:
                env = base_env(f"sqlite:///{root / 'db.sqlite3'}")
                env["SPIFFWORKFLOW_BACKEND_CELERY_ENABLED"] = "true"
                if kind in ("postgres", "mysql"):
                    env["SPIFFWORKFLOW_BACKEND_DATABASE_URI"] = url.format(port=hole.port)
                else:
                    env["SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL"] = url.format(port=hole.port)
                cmd = [*SPIFFCTL, "run", "--role", "worker", "--backend-dir", str(root)]
                t0 = time.perf_counter()
                done = subprocess.run([*cmd, "--wait-timeout", str(timeout)], env=env, capture_output=True, text=True)
                elapsed = time.perf_counter() - t0
                assert done.returncode == 69, done.stderr  # the dependency stayed silent: unavailable
                out.append((kind, mode, elapsed - timeout))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        script = make_backend(root)
        overhead, via, direct = p1(root, script, args.pg, args.runs)
        print(
            f"P1 spiffctl run overhead (median of {args.runs}): {overhead * 1000:.0f} ms "
            f"(spiffctl {via * 1000:.0f} ms, direct {direct * 1000:.0f} ms; goal <= 100 ms)"
        )
        lat = sorted(p2(root, args.runs, delay=1.0))
        p95 = lat[min(len(lat) - 1, round(0.95 * (len(lat) - 1)))]
        print(
            f"P2 late database ready -> script start over {len(lat)} runs: "
            f"median {statistics.median(lat) * 1000:.0f} ms, "
            f"p95 {p95 * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms (goal p95 <= 500 ms)"
        )
        (root / "bin" / "start_celery_worker").write_text("#!/bin/sh\nexit 0\n")
        (root / "bin" / "start_celery_worker").chmod(0o755)
        over = wait_bound(root)
        print(
            "W --wait-timeout 1 against a silent dependency, seconds past the timeout (goal <= 0.3): "
            + ", ".join(f"{kind} {mode} +{extra:.2f}" for kind, mode, extra in over)
        )


if __name__ == "__main__":
    main()
