"""The image as operators meet it: run by a container engine, not by hand.

podman runs the image built by tests/test_image.py (the real Dockerfile on the stand-in backend
base): tini is PID 1, the command is ``run --role X``, the engine runs the image's HEALTHCHECK
(``podman healthcheck run``: there are no systemd timers here, so no periodic checks) and sends
SIGTERM on ``podman stop``. Containers use the host network and reach the machine's PostgreSQL and
private Redis servers on 127.0.0.1. podman needs ``--runtime runc`` with lowered ulimits here (crun
refuses hybrid cgroups; the default rlimits exceed the machine's hard limits). Select with
``-m container`` (or ``-m image``, which includes the image's build tests).
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.support.poll import wait_until
from tests.support.ports import free_port
from tests.support.servers.redis import PrivateRedis
from tests.test_image import PG_URI, Built, backend_env, built  # noqa: F401 (fixture)

pytestmark = [pytest.mark.image, pytest.mark.container, pytest.mark.timeout(900)]

PODMAN = ["podman", "--runtime", "runc"]
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
TTL = 3.0
STOP_GRACE = 10  # podman's default, like docker's


def podman(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} exited {result.returncode}: {result.stderr[-2000:]}")
    return result


class Container:
    """One ``podman run -d`` of the image; removed (with everything in it) by :meth:`remove`."""

    def __init__(self, image: str, *command: str, env: dict[str, str]) -> None:
        self.name = f"spiffctl-test-{uuid.uuid4().hex[:10]}"
        flags = [f"--env={k}={v}" for k, v in env.items()]
        podman("run", "-d", "--name", self.name, "--network", "host", *LIMITS, *flags, image, *command)

    def healthy(self) -> bool:
        """The image's own HEALTHCHECK, run by the engine: exit 0 is healthy."""
        return podman("healthcheck", "run", self.name, check=False, timeout=30).returncode == 0

    def state(self) -> dict:
        (data,) = json.loads(podman("inspect", self.name).stdout)
        return data

    def logs(self) -> str:
        done = podman("logs", self.name, check=False)
        return done.stdout + done.stderr

    def stop(self, grace: int = STOP_GRACE) -> float:
        started = time.monotonic()
        podman("stop", "-t", str(grace), self.name, timeout=grace + 30)
        return time.monotonic() - started

    def kill(self) -> None:
        podman("kill", self.name)

    def remove(self) -> None:
        podman("rm", "-f", "-t", "0", self.name, check=False)


@pytest.fixture
def containers(built: Built) -> Iterator:  # noqa: F811 (the fixture imported above)
    made: list[Container] = []

    def start(*command: str, env: dict[str, str]) -> Container:
        made.append(Container(built.image, *command, env=env))
        return made[-1]

    yield start
    for c in made:
        c.remove()
    left = podman("ps", "-a", "--format", "{{.Names}}").stdout.split()
    assert not set(left) & {c.name for c in made}, left


@pytest.fixture
def redis_server(make_server) -> PrivateRedis:
    return make_server(PrivateRedis)


def role_env(role: str, redis_url: str) -> dict[str, str]:
    env = backend_env(
        SPIFFWORKFLOW_BACKEND_PORT=str(free_port()),
        SPIFFCTL_LOCK_URL=redis_url,
        SPIFFCTL_LOCK_TTL=str(TTL),
        SPIFFCTL_LOCK_KEY=f"spiffctl:test:{uuid.uuid4().hex[:8]}",
    )
    if role in ("worker", "all"):
        # The stand-in worker is a real Celery worker on the private Redis (see tests/image/bin).
        env |= {"SPIFFWORKFLOW_BACKEND_CELERY_ENABLED": "true", "SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL": redis_url}
    return env


# Run in the container by the image's Python: SIGSTOP (or SIGCONT) every Celery process but itself.
SIGNAL_CELERY = (
    "import os, sys; [os.kill(int(p), int(sys.argv[1])) for p in os.listdir('/proc') if p.isdigit() "
    "and int(p) != os.getpid() and b'celery' in open(f'/proc/{p}/cmdline', 'rb').read()]"
)


@pytest.mark.parametrize("role", ["api", "background", "worker", "all"])
def test_role_in_a_container_starts_is_healthy_and_stops(containers, redis_server, role):
    c = containers("run", "--role", role, env=role_env(role, redis_server.url))
    wait_until(c.healthy, 60, 0.5, what=c.logs)
    grace = c.stop()
    state = c.state()
    assert state["State"]["Status"] == "exited"
    assert state["State"]["ExitCode"] == 0, c.logs()  # SIGTERM is a clean stop for every role
    assert grace < STOP_GRACE, "stopped by SIGKILL after the grace, not by SIGTERM"
    assert state["RestartCount"] == 0
    assert "Traceback" not in c.logs()


def test_background_is_unhealthy_while_its_lease_store_is_down(containers, redis_server):
    c = containers("run", "--role", "background", env=role_env("background", redis_server.url))
    wait_until(c.healthy, 60, 0.5, what=c.logs)
    redis_server.stop()
    try:
        # The lease cannot be renewed: the scheduler is fenced before the TTL runs out.
        wait_until(lambda: not c.healthy(), 4 * TTL, 0.5, what=c.logs)
    finally:
        redis_server.start()
    wait_until(c.healthy, 6 * TTL, 0.5, what=c.logs)
    assert c.state()["RestartCount"] == 0


def test_frozen_worker_is_unhealthy(containers, redis_server):
    c = containers("run", "--role", "worker", env=role_env("worker", redis_server.url))
    wait_until(c.healthy, 60, 0.5, what=c.logs)
    podman("exec", c.name, "/app/.venv/bin/python", "-c", SIGNAL_CELERY, "19")  # SIGSTOP
    try:
        assert not c.healthy()  # alive, connected to the broker, and silent: Celery's ping tells
    finally:
        podman("exec", c.name, "/app/.venv/bin/python", "-c", SIGNAL_CELERY, "18")  # SIGCONT
    wait_until(c.healthy, 30, 0.5, what=c.logs)


def started_at(c: Container, since: float, timeout: float) -> float | None:
    """When ``c`` logged that it started its scheduler, polled every 50 ms (None: it did not)."""
    end = since + timeout
    while time.monotonic() < end:
        if "under the lease" in c.logs():
            return time.monotonic()
        time.sleep(0.05)
    return None


def holder_and_standby(containers, redis_url: str) -> tuple[Container, Container]:
    env = role_env("background", redis_url)
    a = containers("run", "--role", "background", env=env)
    wait_until(lambda: "under the lease" in a.logs(), 4 * TTL, 0.2, what=a.logs)
    b = containers("run", "--role", "background", env=env)
    wait_until(lambda: "standby: the Background lease is held by" in b.logs(), 30, 0.2, what=b.logs)
    wait_until(b.healthy, 30, 0.5, what=b.logs)  # a healthy standby
    return a, b


def test_two_background_containers_failover_after_kill(containers, redis_server):
    a, b = holder_and_standby(containers, redis_server.url)
    killed = time.monotonic()
    a.kill()
    took = started_at(b, killed, 3 * TTL)
    assert took is not None, b.logs()
    assert took - killed <= TTL + 2
    wait_until(b.healthy, 10, 0.5)


def test_two_background_containers_hand_off_on_stop(containers, redis_server):
    a, b = holder_and_standby(containers, redis_server.url)
    stopping = time.monotonic()
    a.stop()
    took = started_at(b, stopping, 3 * TTL)
    assert took is not None, b.logs()
    assert took - stopping <= 2
    assert "released cleanly" in b.logs()
    assert a.state()["State"]["ExitCode"] == 0
