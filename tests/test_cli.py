"""The CLI surface: exit codes, one-line errors, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from spiffctl import __version__

CLEAN = {k: v for k, v in os.environ.items() if not k.startswith(("SPIFFWORKFLOW_BACKEND_", "SPIFFCTL_", "FLASK_"))}


def spiffctl(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spiffctl", *args], env={**CLEAN, **env}, capture_output=True, text=True, timeout=60
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("spiffctl: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_version():
    result = spiffctl("--version")
    assert (result.returncode, result.stdout.strip()) == (0, f"spiffctl {__version__}")


def test_help_lists_run():
    result = spiffctl("--help")
    assert result.returncode == 0 and "run" in result.stdout


def test_unknown_role_flag():
    result = spiffctl("run", "--role", "scheduler")
    assert_one_line_error(result, 2, "--role", "'scheduler' is not one of 'api', 'background', 'worker', 'all'")
    assert result.stderr.rstrip().endswith("(see spiffctl run --help)")  # the subcommand's help


def test_bare_spiffctl_prints_the_normal_help():
    result = spiffctl()
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == spiffctl("--help").stdout
    assert result.stdout.startswith("Usage: spiffctl [OPTIONS] COMMAND [ARGS]...\n")


@pytest.mark.parametrize("command", ["run", "doctor", "healthcheck", "status"])
def test_dash_h_is_help_and_roles_show_their_choices(command):
    result = spiffctl(command, "-h")
    assert result.returncode == 0 and result.stdout == spiffctl(command, "--help").stdout
    assert "<str>" not in result.stdout and "<path>" not in result.stdout
    if command != "status":
        assert "--role [api|background|worker|all]" in result.stdout


def test_command_summaries_are_whole_sentences():
    summaries = spiffctl("--help").stdout.split("Commands:")[1]
    assert "..." not in summaries
    assert summaries.count(".") == 4


def test_healthcheck_unknown_role_is_a_usage_error():
    assert_one_line_error(spiffctl("healthcheck", "--role", "apii"), 2, "'apii'", "(see spiffctl healthcheck --help)")


def test_shell_completion_script_completes_the_roles():
    result = spiffctl("--show-completion", "bash", _TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1")
    assert result.returncode == 0 and "_SPIFFCTL_COMPLETE" in result.stdout
    completed = spiffctl(
        COMP_WORDS="spiffctl run --role ", COMP_CWORD="3", _SPIFFCTL_COMPLETE="complete_bash", _TYPER_COMPLETE_ARGS=""
    )
    assert completed.stdout.split() == ["api", "background", "worker", "all"], completed


def test_unknown_role_from_environment():
    # A bad variable is configuration (78), not a usage error: the fix is in the manifest.
    assert_one_line_error(spiffctl("run", SPIFFCTL_ROLE="web"), 78, "SPIFFCTL_ROLE", "'web'")


@pytest.mark.parametrize("command", ["run", "doctor", "healthcheck"])
def test_unknown_role_flag_blames_the_flag_not_the_variable(command):
    result = spiffctl(command, "--role", "apii")
    assert_one_line_error(result, 2, "--role", "'apii'")
    assert "SPIFFCTL_ROLE" not in result.stderr


def test_missing_role():
    assert_one_line_error(spiffctl("run"), 2, "--role")


def test_unknown_option():
    assert_one_line_error(spiffctl("run", "--rol", "api"), 2, "--rol")


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "1e99", ""])
def test_bad_wait_timeout(value):
    result = spiffctl("run", "--role", "api", "--wait-timeout", value)
    assert_one_line_error(result, 2, "--wait-timeout")


@pytest.mark.parametrize("value", ["soon", "-1", "1e12"])
def test_bad_wait_timeout_from_environment(value):
    result = spiffctl("run", "--role", "api", SPIFFCTL_WAIT_TIMEOUT=value)
    assert_one_line_error(result, 78, "SPIFFCTL_WAIT_TIMEOUT", repr(value))
    assert "--wait-timeout" not in result.stderr


def test_configuration_errors_exit_78_one_line_each(tmp_path):
    result = spiffctl("run", "--role", "api", "--backend-dir", str(tmp_path), "--no-wait")
    assert result.returncode == 78
    lines = result.stderr.strip().splitlines()
    assert any("FLASK_SESSION_SECRET_KEY" in line for line in lines)
    assert any("SPIFFWORKFLOW_BACKEND_BPMN_SPEC_ABSOLUTE_DIR" in line for line in lines)
    assert all(line.startswith("spiffctl: ") for line in lines)
    assert "Traceback" not in result.stderr


def test_unreadable_secret_file_exits_78(tmp_path):
    result = spiffctl(
        "run",
        "--role",
        "api",
        "--backend-dir",
        str(tmp_path),
        SPIFFWORKFLOW_BACKEND_DATABASE_URI_FILE=str(tmp_path / "missing"),
    )
    assert_one_line_error(result, 78, "SPIFFWORKFLOW_BACKEND_DATABASE_URI_FILE", "cannot read")
