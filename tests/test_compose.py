"""compose.yaml brought up for real: podman-compose, the image built by tests/test_image.py.

What the file promises an operator is what is checked: every service reaches healthy (the
backend's own ``spiffctl healthcheck``), services find each other by name, the all-in-one runs
its roles, the restart policy is the one written, a stop ends the backend cleanly within its
stop grace, nothing restarts, and ``down`` leaves nothing behind. Images that cannot be pulled
here are substituted by the tests only, in an override file: the frontend and the connector
proxy become small HTTP servers on the stand-in base image (whose stand-in curl runs the
connector's healthcheck as written); the backend image is the one built from the Dockerfile
(``SPIFFCTL_IMAGE``, which compose.yaml reads). podman runs with a containers.conf of the test's own: runc with lowered
ulimits, and the netavark network backend, whose aardvark-dns resolves service names (the CNI
backend here has no DNS plugin). Select with ``-m container`` (or ``-m image``, which includes
the image's build tests).

compose.split.yaml likewise, its PostgreSQL, Redis and nginx images substituted by the stand-in
base with Debian's packages behind the official images' contracts: every backend replica healthy,
exactly one Background runs the scheduler (the other is its standby), the API answers through
nginx on the published port.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.poll import wait_until
from tests.support.ports import port_open
from tests.test_image import ROOT, Built, built  # noqa: F401 (fixture)

pytestmark = [pytest.mark.image, pytest.mark.container, pytest.mark.timeout(900)]

CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
[network]
network_backend = "netavark"
"""

STANDINS = """\
services:
  spiffworkflow-frontend:
    image: {base}
    command: ["python3", "-m", "http.server", "8001"]
  spiffworkflow-connector:
    image: {base}
    # Answers the liveness path that compose.yaml's own healthcheck asks for (with the image's
    # stand-in curl).
    command:
      - bash
      - -c
      - mkdir -p /tmp/s/v1 && touch /tmp/s/v1/liveness && cd /tmp/s && exec python3 -m http.server 8004
"""

# compose.split.yaml's services, on the same stand-in base: Debian's PostgreSQL, Redis and nginx
# behind the official images' contracts (tests/image/services); the services' own commands and
# healthchecks as written, except the two images whose command is their image's default.
SPLIT_STANDINS = (
    STANDINS
    + """  postgres:
    image: {base}
    command: ["standin-postgres"]
  redis:
    image: {base}
  api-lb:
    image: {base}
    command: ["nginx", "-g", "daemon off;"]
"""
)

BACKEND = "spiffworkflow-backend"
PASSWORD = "a-test-only-postgres-password"


class Project:
    def __init__(self, root: Path, file: str, image: str, base: str) -> None:
        self.root = root
        self.file = file
        self.name = f"spiffctl{uuid.uuid4().hex[:8]}"
        (root / "secrets").mkdir(parents=True)
        (root / "process_models").mkdir()
        (root / "secrets" / "flask_session_secret_key").write_text("a-test-only-session-key\n")
        (root / "secrets" / "postgres_password").write_text(PASSWORD + "\n")
        uri = f"postgresql://spiffworkflow:{PASSWORD}@postgres:5432/spiffworkflow\n"
        (root / "secrets" / "database_uri").write_text(uri)
        shutil.copy2(ROOT / file, root / file)
        shutil.copytree(ROOT / "deploy" / "compose", root / "deploy" / "compose")
        standins = SPLIT_STANDINS if file == "compose.split.yaml" else STANDINS
        (root / "standins.yaml").write_text(standins.format(base=base))
        (root / "containers.conf").write_text(CONTAINERS_CONF)
        self.env = {**os.environ, "CONTAINERS_CONF": str(root / "containers.conf"), "SPIFFCTL_IMAGE": image}

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "podman_compose", "-p", self.name, "-f", self.file, "-f", "standins.yaml"]
        done = subprocess.run([*cmd, *args], cwd=self.root, env=self.env, capture_output=True, text=True, timeout=180)
        if check:
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return done

    def podman(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True, timeout=60)
        if check:
            assert done.returncode == 0, done.stderr[-2000:]
        return done

    def container(self, service: str, replica: int = 1) -> str:
        return f"{self.name}_{service}_{replica}"

    def logs(self, service: str, replica: int = 1) -> str:
        done = self.podman("logs", self.container(service, replica), check=False)
        return done.stdout + done.stderr

    def inspect(self, service: str) -> dict:
        return self.inspect_replica(service, 1)

    def inspect_replica(self, service: str, replica: int) -> dict:
        (data,) = json.loads(self.podman("inspect", self.container(service, replica)).stdout)
        return data

    def healthy(self, service: str, replica: int = 1) -> bool:
        return self.podman("healthcheck", "run", self.container(service, replica), check=False).returncode == 0

    def leftovers(self) -> list[str]:
        found = []
        for kind in ("ps -a", "network ls", "volume ls"):
            out = self.podman(*kind.split(), "--format", "{{.Name}}" if kind != "ps -a" else "{{.Names}}").stdout
            found += [x for x in out.split() if x.startswith(self.name)]
        return found


@pytest.fixture
def make_project(built: Built, tmp_path: Path) -> Iterator:  # noqa: F811 (the fixture imported above)
    if not all(Path("/usr/lib/podman", tool).exists() for tool in ("netavark", "aardvark-dns")):
        pytest.skip("compose test needs netavark and aardvark-dns (apt-get install netavark aardvark-dns)")
    for port in (8000, 8001):
        if port_open(port):
            pytest.skip(f"compose.yaml publishes port {port}, which is in use on this machine")
    base = built.inspect["Config"]["Labels"]["org.opencontainers.image.base.name"]
    made: list[Project] = []

    def make(file: str) -> Project:
        made.append(Project(tmp_path / "project", file, built.image, base))
        return made[-1]

    yield make
    for p in made:
        p.compose("down", "-v", check=False)


def test_compose_yaml_up_healthy_and_down_leaves_nothing(make_project) -> None:
    project = make_project("compose.yaml")
    project.compose("up", "-d")
    wait_until(
        lambda: project.healthy(BACKEND),
        90,
        1.0,
        what=lambda: project.podman("logs", project.container(BACKEND)).stderr,
    )
    wait_until(lambda: project.healthy("spiffworkflow-connector"), 60, 1.0)
    # Service names resolve between containers: the frontend reaches the API as compose names it.
    probe = (
        "import urllib.request; print(urllib.request.urlopen('http://spiffworkflow-backend:8000/v1.0/status').read())"
    )
    answer = project.podman("exec", project.container("spiffworkflow-frontend"), "python3", "-c", probe).stdout
    assert '"ok": true' in answer
    # The API is published on the host as the file says.
    assert port_open(8000)
    # The all-in-one runs its roles (Celery is off in compose.yaml: no worker).
    status = project.podman("exec", project.container(BACKEND), "spiffctl", "status").stdout
    assert [line.split()[:2] for line in status.splitlines()] == [["api", "RUNNING"], ["background", "RUNNING"]]
    backend = project.inspect(BACKEND)
    assert backend["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert backend["Config"]["Healthcheck"]["Test"] == ["CMD", "spiffctl", "healthcheck"]
    # depends_on (service_started): the frontend started after the backend.
    frontend = project.inspect("spiffworkflow-frontend")
    assert backend["State"]["StartedAt"] <= frontend["State"]["StartedAt"]
    for service in (BACKEND, "spiffworkflow-frontend", "spiffworkflow-connector"):
        assert project.inspect(service)["RestartCount"] == 0, service
    logs = (
        project.podman("logs", project.container(BACKEND)).stdout
        + project.podman("logs", project.container(BACKEND)).stderr
    )
    assert "a-test-only-session-key" not in logs and "Traceback" not in logs
    # Stop: compose sends SIGTERM with stop_grace_period (20 s); spiffctl stops every role in its
    # own 8 s, so the backend ends by itself, with 0, and unless-stopped does not bring it back.
    started = time.monotonic()
    project.compose("stop", BACKEND)
    assert time.monotonic() - started < 20
    state = project.inspect(BACKEND)["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 0)
    project.compose("down", "-v")
    assert project.leftovers() == []


def test_compose_split_yaml_up_one_background_and_down_leaves_nothing(make_project) -> None:
    project = make_project("compose.split.yaml")
    project.compose("up", "-d")
    for service in ("postgres", "redis"):
        wait_until(lambda s=service: project.healthy(s), 60, 1.0, what=lambda s=service: project.logs(s))
    backends = [("api-1", 1), ("api-2", 1), ("background", 1), ("background", 2), ("worker", 1), ("worker", 2)]
    for service, replica in backends:
        wait_until(
            lambda s=service, r=replica: project.healthy(s, r),
            120,
            1.0,
            what=lambda s=service, r=replica: project.logs(s, r),
        )
    # The lease (in the Redis broker): one scheduler, one hot standby.
    logs = [project.logs("background", r) for r in (1, 2)]
    assert sum("under the lease" in text for text in logs) == 1, logs
    assert sum("standby: the Background lease is held by" in text for text in logs) == 1, logs
    # The API through nginx, on the port the file publishes.
    wait_until(lambda: port_open(8000), 30)
    with urllib.request.urlopen("http://127.0.0.1:8000/v1.0/status", timeout=10) as answer:
        assert json.loads(answer.read())["ok"] is True
    for service, replica in [*backends, ("postgres", 1), ("redis", 1), ("api-lb", 1)]:
        assert project.inspect_replica(service, replica)["RestartCount"] == 0, service
    everything = "".join(project.logs(s, r) for s, r in backends)
    assert PASSWORD not in everything and "Traceback" not in everything
    project.compose("down", "-v")
    assert project.leftovers() == []
