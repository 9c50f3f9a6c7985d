"""Figures for the image as a container engine runs it (podman, runc, host network).

    python bench/containers.py [--runs 5]

Builds the image like tests/test_image.py does (the real Dockerfile on the stand-in backend base;
cached after the first build), then:

C1  container start -> healthy for the api stand-in: `podman run -d`, then `podman healthcheck run`
    (the image's HEALTHCHECK) every 0.1 s until it passes; median and max over the runs.
C2  `podman stop` -> exited, for `run --role all` (api + background under supervisord).
C3  image size over its base, and what the bytecode costs: the size of spiffctl's venv's .pyc
    files, and the time `compileall` takes for it (run again in a container of the image).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.ports import free_port
from tests.test_image import IMAGE, PG_URI, _base_image, _context, _wheels, backend_env, sh

PODMAN = ["podman", "--runtime", "runc"]
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)}: {done.stderr[-1000:]}")
    return done


def build() -> str:
    base = _base_image()
    with tempfile.TemporaryDirectory(prefix="bench-containers-") as tmp:
        ctx = _context(Path(tmp), _wheels(base))
        sh("podman", "build", "--isolation=chroot", "--format", "docker", "--build-arg", f"BASE_IMAGE={base}",
           "--build-arg", "PIP_NO_INDEX=1", "--build-arg", "SPIFFCTL_VERSION=test", "-t", IMAGE, str(ctx),
           timeout=600)  # fmt: skip
    return base


def run(role: str) -> str:
    name = f"spiffctl-bench-{uuid.uuid4().hex[:8]}"
    env = backend_env(SPIFFWORKFLOW_BACKEND_PORT=str(free_port()), SPIFFCTL_LOCK="off")
    flags = [f"--env={k}={v}" for k, v in env.items()]
    podman("run", "-d", "--name", name, "--network", "host", *LIMITS, *flags, IMAGE, "run", "--role", role)
    return name


def healthy(name: str) -> bool:
    return podman("healthcheck", "run", name, check=False).returncode == 0


def start_to_healthy() -> float:
    started = time.monotonic()
    name = run("api")
    try:
        while not healthy(name):
            if time.monotonic() - started > 60:
                raise RuntimeError("api container not healthy within 60 s")
            time.sleep(0.1)
        return time.monotonic() - started
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)


def stop_all_in_one() -> float:
    name = run("all")
    try:
        end = time.monotonic() + 60
        while not healthy(name) and time.monotonic() < end:
            time.sleep(0.2)
        started = time.monotonic()
        podman("stop", "-t", "10", name)
        took = time.monotonic() - started
        (state,) = json.loads(podman("inspect", name).stdout)
        assert state["State"]["ExitCode"] == 0, state["State"]
        return took
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)


def size(image: str) -> int:
    (data,) = json.loads(podman("image", "inspect", image).stdout)
    return int(data["Size"])


BYTECODE = (
    "import pathlib, subprocess, time; "
    "pyc = sum(p.stat().st_size for p in pathlib.Path('/opt/spiffctl').rglob('*.pyc')); "
    "t = time.monotonic(); "
    "subprocess.run(['/opt/spiffctl/bin/python', '-m', 'compileall', '-q', '-f', '-j', '0', "
    "'--invalidation-mode', 'unchecked-hash', '/opt/spiffctl'], stdout=subprocess.DEVNULL, check=True); "
    "print(pyc, time.monotonic() - t)"
)


def bytecode() -> tuple[int, float]:
    out = podman("run", "--rm", "--network", "host", *LIMITS, "--entrypoint", "/opt/spiffctl/bin/python", IMAGE,
                 "-c", BYTECODE).stdout.split()  # fmt: skip
    return int(out[-2]), float(out[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"database for the api stand-in: {PG_URI.rsplit('@', 1)[-1]}")
    base = build()
    c1 = [start_to_healthy() for _ in range(args.runs)]
    c2 = [stop_all_in_one() for _ in range(max(1, args.runs // 2))]
    pyc, seconds = bytecode()

    def show(name: str, values: list[float]) -> None:
        print(f"{name}: median {statistics.median(values):.2f} s, max {max(values):.2f} s ({len(values)} runs)")

    show("C1 container start -> healthy (api)", c1)
    show("C2 podman stop -> exited (all-in-one)", c2)
    over = (size(IMAGE) - size(base)) / 1e6
    print(f"C3 image size over its base: {over:.1f} MB; bytecode {pyc / 1e6:.1f} MB .pyc, compileall {seconds:.2f} s")


if __name__ == "__main__":
    main()
