"""The real Dockerfile, built on a stand-in backend image and run, with no Docker engine.

The stand-in base (tests/image/build-base) is a debootstrapped Debian root fs with python3, bash,
Celery in /app/.venv and stand-in bin scripts at /app/bin. spiffctl's wheels are prepared like an operator would for an
offline build (scripts/build_wheels.py) and the Dockerfile is built with ``PIP_NO_INDEX=1`` by
``podman build --isolation=chroot``; commands then run in the image with
``buildah run --isolation chroot`` on the host network, against the machine's PostgreSQL and Redis.

Everything expensive is cached under $SPIFFCTL_TEST_CACHE (default /var/cache/spiffctl-test):
the first run takes about a minute and a half, later ones a few seconds. Select with ``-m image``.
The tests skip (with the reason) where podman/buildah/debootstrap cannot run or the base or the
wheels cannot be prepared; a failing ``podman build`` of the Dockerfile is a failure.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.ports import free_port

pytestmark = [pytest.mark.image, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("SPIFFCTL_TEST_CACHE", "/var/cache/spiffctl-test"))
IMAGE = "localhost/spiffctl-test:latest"
PG_URI = os.environ.get("SPIFFCTL_TEST_PG_URI", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("SPIFFCTL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ENTRYPOINT = ["/usr/local/bin/tini", "--", "/usr/local/bin/spiffctl"]


def sh(*args: str, timeout: float = 120, check: bool = True, **kw) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    if check and result.returncode != 0:
        output = result.stdout[-3000:] + result.stderr[-3000:]
        raise RuntimeError(f"{' '.join(args)} exited {result.returncode}:\n{output}")
    return result


def _skip_unless_tools() -> None:
    missing = [t for t in ("podman", "buildah", "debootstrap") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"image test needs {', '.join(missing)} (apt-get install podman buildah debootstrap)")
    if os.geteuid() != 0:
        pytest.skip("image test needs root (debootstrap, podman --isolation=chroot)")


def _base_image() -> str:
    try:
        env = {**os.environ, "PYTHON": sys.executable}  # its pip downloads the worker's Celery wheels
        return sh(str(ROOT / "tests/image/build-base"), timeout=480, env=env).stdout.strip().splitlines()[-1]
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"cannot build the stand-in base image (debootstrap/podman unusable here?): {e}")


def _wheels(base: str) -> Path:
    """Wheels for the base's Python and glibc, as scripts/build_wheels.py makes them; cached."""
    probe = "import platform; print(platform.python_version(), platform.libc_ver()[1])"
    container = sh("buildah", "from", "--pull-never", base).stdout.strip()
    try:
        found = sh("buildah", "run", "--isolation", "chroot", container, "--", "python3", "-c", probe)
        version, glibc = found.stdout.split()
    finally:
        sh("buildah", "rm", container, check=False)
    key = hashlib.sha256()
    for f in ("pyproject.toml", "constraints.txt", "scripts/build_wheels.py"):
        key.update((ROOT / f).read_bytes())
    key.update(f"{version} {glibc}".encode())
    folder = CACHE / f"wheels-{key.hexdigest()[:12]}"
    if (folder / ".complete").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    try:
        sh(sys.executable, str(ROOT / "scripts/build_wheels.py"), "-o", str(folder),
           "--python-version", version, "--glibc", glibc, timeout=300)  # fmt: skip
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"cannot prepare wheels (is PyPI or a pip mirror reachable?): {e}")
    (folder / ".complete").touch()
    return folder


def _context(tmp: Path, wheels: Path) -> Path:
    """A build context holding what .dockerignore lets through, with the prepared wheels."""
    ctx = tmp / "context"
    ctx.mkdir()
    for name in ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "constraints.txt"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, ctx / name)
    shutil.copytree(ROOT / "spiffctl", ctx / "spiffctl", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (ctx / "wheels").mkdir()
    for whl in wheels.glob("*.whl"):
        shutil.copy2(whl, ctx / "wheels" / whl.name)
    return ctx


@dataclass
class Built:
    image: str
    container: str  # a buildah working container of the image, to run commands in
    inspect: dict
    build_seconds: float

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run ``args`` in the image (host network); ``env`` on top of the image's environment."""
        flags = ["--env", "TINI_SUBREAPER=1"]  # tini is not PID 1 under buildah run
        for k, v in (env or {}).items():
            flags += ["--env", f"{k}={v}"]
        return sh("buildah", "run", "--isolation", "chroot", "--network", "host", *flags, self.container, "--",
                  *args, timeout=timeout, check=False)  # fmt: skip

    def spiffctl(self, *args: str, env: dict[str, str] | None = None, timeout: float = 60):
        """``args`` through the image's own ENTRYPOINT (tini + spiffctl)."""
        return self.run(*self.inspect["Config"]["Entrypoint"], *args, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    import time

    _skip_unless_tools()
    base = _base_image()
    wheels = _wheels(base)
    ctx = _context(tmp_path_factory.mktemp("image"), wheels)
    started = time.monotonic()
    # PIP_NO_INDEX=1: the Python part must come from wheels/ alone (the offline build).
    sh("podman", "build", "--isolation=chroot", "--format", "docker", "--build-arg", f"BASE_IMAGE={base}",
       "--build-arg", "PIP_NO_INDEX=1", "--build-arg", "SPIFFCTL_VERSION=test", "-t", IMAGE, str(ctx),
       timeout=420)  # fmt: skip
    seconds = time.monotonic() - started
    (inspect,) = json.loads(sh("podman", "image", "inspect", IMAGE).stdout)
    container = sh("buildah", "from", "--pull-never", IMAGE).stdout.strip()
    try:
        yield Built(IMAGE, container, inspect, seconds)
    finally:
        sh("buildah", "rm", container, check=False)


def backend_env(**extra: str) -> dict[str, str]:
    env = {
        "SPIFFWORKFLOW_BACKEND_DATABASE_URI": PG_URI,
        "FLASK_SESSION_SECRET_KEY": "test-only-not-a-secret",
        "SPIFFWORKFLOW_BACKEND_BPMN_SPEC_ABSOLUTE_DIR": "/app/process_models",
    }
    return env | extra


def test_image_config(built: Built) -> None:
    config = built.inspect["Config"]
    assert config["Entrypoint"] == ENTRYPOINT
    assert config["Cmd"] == ["run", "--role", "api"]
    assert config["WorkingDir"] == "/app"
    health = built.inspect.get("Healthcheck") or config.get("Healthcheck") or {}
    assert health.get("Test") == ["CMD", "/usr/local/bin/spiffctl", "healthcheck"], health
    labels = config.get("Labels") or {}
    assert labels.get("org.opencontainers.image.title") == "spiffctl"
    assert labels.get("org.opencontainers.image.version") == "test"
    assert labels.get("org.opencontainers.image.base.name", "").startswith("localhost/spiffctl-test-base:")
    assert not any("SECRET" in e or "PASSWORD" in e for e in config.get("Env", [])), config.get("Env")
    print(f"image built in {built.build_seconds:.1f}s")


def test_own_venv_leaves_backend_alone(built: Built) -> None:
    script = (
        "set -e; readlink -f /usr/local/bin/spiffctl; command -v python3; "
        "test -x /usr/local/bin/supervisord; test -x /usr/local/bin/tini; "
        "/opt/spiffctl/bin/python -c 'import typer, psycopg, redis, supervisor, pymysql, amqp'; "
        "if ls /app/.venv/lib/python3*/site-packages | grep -i -E 'spiffctl|supervisor|typer'; then exit 9; fi"
    )
    result = built.run("bash", "-c", script)
    assert result.returncode == 0, result.stdout + result.stderr
    spiffctl, python = result.stdout.split()[:2]
    assert spiffctl == "/opt/spiffctl/bin/spiffctl"
    assert python == "/app/.venv/bin/python3", "the backend's venv must stay first on PATH"


CHECK_PYC = """
import importlib.util, pkgutil, spiffctl
for m in pkgutil.walk_packages(spiffctl.__path__, "spiffctl."):
    header = open(importlib.util.cache_from_source(importlib.util.find_spec(m.name).origin), "rb").read(8)
    assert int.from_bytes(header[4:8], "little") == 1, m.name
print("ok")
"""


def test_bytecode_ships_and_is_used_without_a_write(built: Built) -> None:
    """Every spiffctl module has an unchecked-hash .pyc (flags 1 in the header: never compared with
    its source), and running a command writes no new bytecode (a read-only root filesystem works)."""
    count = "find /opt/spiffctl -name '*.pyc' -newer /opt/spiffctl/bin/python | wc -l"
    before = built.run("bash", "-c", count)
    result = built.run("/opt/spiffctl/bin/python", "-c", CHECK_PYC)
    assert result.stdout.strip() == "ok", result.stdout + result.stderr
    built.spiffctl("healthcheck", "--role", "api")
    after = built.run("bash", "-c", count)
    assert before.stdout == after.stdout and int(before.stdout) > 100


def test_version(built: Built) -> None:
    result = built.spiffctl("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("spiffctl "), result.stdout


def _checks(node: object) -> Iterator[dict]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _checks(value)
    elif isinstance(node, list):
        for item in node:
            yield from _checks(item)


def _passed(check: dict) -> bool:
    for key in ("ok", "passed"):
        if key in check:
            return check[key] is True
    return str(check.get("status", check.get("state", check.get("result", "")))).lower() in ("ok", "pass", "passed")


def test_doctor_json_against_host_services(built: Built) -> None:
    env = backend_env(
        SPIFFWORKFLOW_BACKEND_CELERY_ENABLED="true",
        SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL=REDIS_URL,
    )
    result = built.spiffctl("doctor", "--json", "--timeout", "10", env=env, timeout=90)
    assert result.returncode in (0, 1), f"exit {result.returncode}: {result.stdout}{result.stderr}"
    report = json.loads(result.stdout)
    checks = [c for c in _checks(report) if any(k in c for k in ("ok", "passed", "status", "state", "result"))]
    text = [(json.dumps(c).lower(), _passed(c)) for c in checks]
    assert any(ok and "postgres" in t for t, ok in text), f"no passing PostgreSQL check in {result.stdout}"
    assert any(ok and "redis" in t for t, ok in text), f"no passing Redis check in {result.stdout}"
    assert "test-only-not-a-secret" not in result.stdout + result.stderr


RUN_API = """
set -u
"$@" &
pid=$!
status="http://127.0.0.1:$SPIFFWORKFLOW_BACKEND_PORT/v1.0/status"
check="import json, sys, urllib.request as u
sys.exit(0 if json.load(u.urlopen('$status', timeout=1)).get('ok') is True else 1)"
for _ in $(seq 1 150); do
  if python3 -c "$check" 2>/dev/null; then
    echo "STATUS OK"; kill -TERM "$pid"; wait "$pid"; echo "EXIT $?"; exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then wait "$pid"; echo "DIED $?"; exit 1; fi
  sleep 0.2
done
echo "TIMEOUT"; kill -KILL "$pid"; exit 1
"""


def test_run_api_reaches_standin(built: Built) -> None:
    port = free_port()
    env = backend_env(SPIFFWORKFLOW_BACKEND_PORT=str(port))
    args = [*built.inspect["Config"]["Entrypoint"], "run", "--role", "api", "--wait-timeout", "20"]
    result = built.run("bash", "-c", RUN_API, "run-api", *args, env=env, timeout=90)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "STATUS OK" in out
    assert f"listening on {port}" in out
    # spiffctl forces the in-app scheduler off for the API role.
    assert "scheduler in app=false" in out
    assert "EXIT 0" in out, out
