"""The variables table: every value judged as its reader judges it; every bad one is 78 and one line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from spiffctl.config import settings, variables
from spiffctl.config.variables import VARIABLES
from tests.support.cli import backend_root, base_env, spiffctl

UPGRADE_DB = "SPIFFWORKFLOW_BACKEND_UPGRADE_DB"
CELERY = "SPIFFWORKFLOW_BACKEND_CELERY_ENABLED"
README = Path(__file__).resolve().parent.parent / "README.md"


def load(tmp_path: Path, **env: str) -> settings.Settings:
    return settings.load(base_env(backend_root(tmp_path), **env), backend_dir=tmp_path)


@pytest.mark.parametrize("value", ["yes", "True", "TRUE", "1", "on"])
def test_a_value_the_api_script_reads_as_false_is_refused(tmp_path, value):
    # bin/boot_server_in_docker tests [[ "$X" == "true" ]]: anything else skips the upgrade, and an
    # empty database then waits for a schema nobody migrates.
    s = load(tmp_path, **{UPGRADE_DB: value})
    [problem] = [p for p in s.errors if p.variable == UPGRADE_DB]
    assert repr(value) in problem.message and '"true" exactly' in problem.message
    assert f"{UPGRADE_DB}=true or {UPGRADE_DB}=false" in problem.fix
    assert not s.flag(UPGRADE_DB)


@pytest.mark.parametrize("value", ["no", "False", "0", "off"])
def test_a_false_word_for_a_bash_boolean_is_a_warning(tmp_path, value):
    s = load(tmp_path, **{UPGRADE_DB: value})
    assert not s.errors
    [warning] = [p for p in s.warnings if p.variable == UPGRADE_DB]
    assert "lower case" in warning.fix


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("false", False), ("", False)])
def test_bash_boolean_accepted_values(tmp_path, value, expected):
    s = load(tmp_path, **{UPGRADE_DB: value})
    assert not [p for p in s.problems if p.variable == UPGRADE_DB]
    assert s.flag(UPGRADE_DB) is expected


@pytest.mark.parametrize(("value", "expected"), [("TRUE", True), ("True", True), ("FALSE", False)])
def test_python_boolean_any_case(tmp_path, value, expected):
    # The backend's config_from_env lowers the value before comparing.
    s = load(tmp_path, **{CELERY: value, "SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL": "redis://localhost"})
    assert not [p for p in s.problems if p.variable == CELERY]
    assert s.celery_enabled is expected


@pytest.mark.parametrize("value", ["no", "0", "yes"])
def test_python_boolean_other_text_is_refused(tmp_path, value):
    s = load(tmp_path, **{CELERY: value})
    [problem] = [p for p in s.errors if p.variable == CELERY]
    assert "counts as true" in problem.message


def test_readme_variables_table_is_the_table():
    assert variables.markdown() in README.read_text(), "regenerate it: python -m spiffctl.config.variables"


def test_every_spiffctl_variable_the_code_reads_is_in_the_table():
    package = Path(variables.__file__).parent
    internal = {
        "SPIFFCTL_LEASE_EPOCH",  # set by spiffctl for the Background's script
        "SPIFFCTL_PING_BROKER_URL",  # set by spiffctl for its ping child
        "SPIFFCTL_START_AFTER",  # set by the all-in-one for each program
        "SPIFFCTL_LOCK_OFF_EXPLAINED",  # set by the all-in-one for its programs
        "SPIFFCTL_SECRETS_FD",  # the all-in-one hands its resolved secrets to pid1 (removed before any role starts)
    }
    read = {m for f in package.rglob("*.py") for m in re.findall(r'"(SPIFFCTL_[A-Z_]+)"', f.read_text())}
    assert read - internal <= set(variables.BY_NAME), read - internal - set(variables.BY_NAME)


# ------------------------------------------------------------------------ every variable, bad values

BAD_BY_KIND: dict[str, tuple[str, ...]] = {
    "bool": ("yes", "1"),
    "bash-bool": ("yes", "True"),
    "number": ("abc", "-1", "1e12"),
    "port": ("0", "http"),
    "choice": ("nope",),
}
# Kinds the table does not judge alone: bad values that their context refuses.
BAD_IN_CONTEXT: dict[str, tuple[tuple[str, ...], str, dict[str, str]]] = {
    # variable: (bad values, role, extra environment)
    "SPIFFCTL_LOCK_URL": (("nonsense://x",), "background", {}),
    "SPIFFWORKFLOW_BACKEND_DATABASE_URI": (("oracle://db/x", "mysql://root:p@ss@db/x"), "api", {}),
    "SPIFFWORKFLOW_BACKEND_CELERY_BROKER_URL": (("kafka://x",), "worker", {CELERY: "true"}),
    "SPIFFWORKFLOW_BACKEND_CELERY_RESULT_BACKEND": (("redis://",), "worker", {CELERY: "true"}),
    "SPIFFWORKFLOW_BACKEND_BPMN_SPEC_ABSOLUTE_DIR": (("models",), "api", {}),
}
# No value of these is wrong for the configuration (free text, secrets, a folder checked when used).
UNJUDGED = {
    "SPIFFCTL_BACKEND_DIR",  # a folder without the scripts: 127, the script's own exit code
    "SPIFFCTL_RUN_DIR",  # validated by state.run_dir
    "SPIFFCTL_LOCK_KEY",
    "SPIFFCTL_DEBUG",
    "SPIFFWORKFLOW_BACKEND_DATABASE_PASSWORD",
    "SPIFFWORKFLOW_BACKEND_ENV",
    "SPIFFWORKFLOW_BACKEND_CELERY_SQS_URL",
    "SPIFFWORKFLOW_BACKEND_CELERY_RESULT_S3_BUCKET",
    "SPIFFWORKFLOW_BACKEND_EVENT_NOTIFIER_PROCESS_MODEL",
    "FLASK_SESSION_SECRET_KEY",
    "SPIFFWORKFLOW_BACKEND_WSGI_PATH_PREFIX",
    "SPIFFWORKFLOW_BACKEND_CONNECTOR_PROXY_URL",  # a warning: the backend starts without it
}


def cases() -> list[tuple[str, str, str, dict[str, str]]]:
    out = []
    for v in VARIABLES:
        if v.name in BAD_IN_CONTEXT:
            values, role, extra = BAD_IN_CONTEXT[v.name]
        else:
            values, role, extra = BAD_BY_KIND.get(v.kind, ()), "api", {}
        out += [(v.name, value, role, extra) for value in values]
    return out


def test_every_variable_has_bad_values_or_is_known_free():
    tested = {name for name, *_ in cases()}
    assert tested | UNJUDGED == set(variables.BY_NAME)
    assert not tested & UNJUDGED


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return backend_root(tmp_path_factory.mktemp("backend"))


def test_the_baseline_starts(backend, tmp_path):
    # Without it, the walk below could pass on an environment that fails for another reason.
    env = base_env(backend, SPIFFCTL_RUN_DIR=str(tmp_path))
    assert spiffctl("run", "--role", "api", "--no-wait", env=env).code == 0


@pytest.mark.parametrize(("name", "value", "role", "extra"), cases())
def test_every_bad_value_is_78_and_one_line_naming_it(backend, tmp_path, name, value, role, extra):
    env = base_env(backend, SPIFFCTL_RUN_DIR=str(tmp_path), **extra)
    env[name] = value
    ran = spiffctl("run", "--role", role, "--no-wait", env=env)
    lines = ran.err.strip().splitlines()
    assert ran.code == 78, ran.err
    assert len(lines) == 1 and lines[0].startswith(f"spiffctl: {name}"), ran.err
    assert "Traceback" not in ran.err and "None" not in ran.err
