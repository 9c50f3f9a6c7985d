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
backend here has no DNS plugin). Select with ``-m image``.

Not covered: compose.split.yaml, whose PostgreSQL, Redis and nginx images would have to be built
locally as well.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import eventually, port_open
from tests.test_image import ROOT, Built, built  # noqa: F401 (fixture)

pytestmark = [pytest.mark.image, pytest.mark.timeout(900)]

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

BACKEND = "spiffworkflow-backend"


class Project:
    def __init__(self, root: Path, image: str, base: str) -> None:
        self.root = root
        self.name = f"spiffctl{uuid.uuid4().hex[:8]}"
        (root / "secrets").mkdir(parents=True)
        (root / "process_models").mkdir()
        (root / "secrets" / "flask_session_secret_key").write_text("a-test-only-session-key\n")
        shutil.copy2(ROOT / "compose.yaml", root / "compose.yaml")
        (root / "standins.yaml").write_text(STANDINS.format(base=base))
        (root / "containers.conf").write_text(CONTAINERS_CONF)
        self.env = {**os.environ, "CONTAINERS_CONF": str(root / "containers.conf"), "SPIFFCTL_IMAGE": image}

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "podman_compose", "-p", self.name, "-f", "compose.yaml", "-f", "standins.yaml"]
        done = subprocess.run([*cmd, *args], cwd=self.root, env=self.env, capture_output=True, text=True, timeout=180)
        if check:
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return done

    def podman(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True, timeout=60)
        if check:
            assert done.returncode == 0, done.stderr[-2000:]
        return done

    def container(self, service: str) -> str:
        return f"{self.name}_{service}_1"

    def inspect(self, service: str) -> dict:
        (data,) = json.loads(self.podman("inspect", self.container(service)).stdout)
        return data

    def healthy(self, service: str) -> bool:
        return self.podman("healthcheck", "run", self.container(service), check=False).returncode == 0

    def leftovers(self) -> list[str]:
        found = []
        for kind in ("ps -a", "network ls", "volume ls"):
            out = self.podman(*kind.split(), "--format", "{{.Name}}" if kind != "ps -a" else "{{.Names}}").stdout
            found += [x for x in out.split() if x.startswith(self.name)]
        return found


@pytest.fixture
def project(built: Built, tmp_path: Path) -> Iterator[Project]:  # noqa: F811 (the fixture imported above)
    if not all(Path("/usr/lib/podman", tool).exists() for tool in ("netavark", "aardvark-dns")):
        pytest.skip("compose test needs netavark and aardvark-dns (apt-get install netavark aardvark-dns)")
    for port in (8000, 8001):
        if port_open(port):
            pytest.skip(f"compose.yaml publishes port {port}, which is in use on this machine")
    base = built.inspect["Config"]["Labels"]["org.opencontainers.image.base.name"]
    p = Project(tmp_path / "project", built.image, base)
    yield p
    p.compose("down", "-v", check=False)


def test_compose_yaml_up_healthy_and_down_leaves_nothing(project: Project) -> None:
    project.compose("up", "-d")
    assert eventually(lambda: project.healthy(BACKEND), 90, 1.0), project.podman(
        "logs", project.container(BACKEND)
    ).stderr
    assert eventually(lambda: project.healthy("spiffworkflow-connector"), 60, 1.0)
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
