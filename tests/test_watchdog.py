"""The watchdog process and its typed pipe messages, driven directly (real processes, no Redis)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spiffctl.lease import clock, messages
from spiffctl.lease.messages import CONTROL, REPORTS, Exited, Failed, Fence, How, ProtocolError, Started, Stop
from spiffctl.util.procs import exit_code
from tests.support.poll import wait_until
from tests.support.procs import pid_alive

# --- messages ------------------------------------------------------------------------------------


@given(
    st.one_of(
        st.builds(Fence, st.floats(allow_nan=False, allow_infinity=False)),
        st.builds(Stop, st.floats(0, 1e6)),
        st.builds(Started, st.integers(1, 2**22)),
        st.builds(Exited, st.integers(0, 255), st.sampled_from(How)),
        st.builds(Failed, st.sampled_from([126, 127]), st.text(min_size=1).filter(lambda t: t.split())),
    )
)
def test_every_message_comes_back_as_sent(message):
    kinds = CONTROL if isinstance(message, (Fence, Stop)) else REPORTS
    [back] = messages.Reader(kinds).feed(messages.encode(message))
    if isinstance(message, Failed):
        assert back == Failed(message.code, " ".join(message.reason.split()))  # one line
    else:
        assert back == message  # floats bit for bit


def test_reader_keeps_a_partial_line_for_the_next_chunk():
    reader = messages.Reader(REPORTS)
    data = messages.encode(Started(42)) + messages.encode(Exited(143, How.STOPPED))
    assert reader.feed(data[:5]) == []
    assert reader.feed(data[5:-3]) == [Started(42)]
    assert reader.feed(data[-3:]) == [Exited(143, How.STOPPED)]


@pytest.mark.parametrize(
    ("line", "kinds"),
    [
        (b"fence nan", CONTROL),  # a deadline that is never reached
        (b"fence inf", CONTROL),
        (b"fence", CONTROL),
        (b"stop 1.0 2.0", CONTROL),
        (b"started 42", CONTROL),  # a report on the control pipe
        (b"exited 1 maybe", REPORTS),
        (b"exited 1.5 own", REPORTS),
        (b"hello", REPORTS),
    ],
)
def test_malformed_lines_are_protocol_errors(line, kinds):
    with pytest.raises(ProtocolError):
        messages.decode(line, kinds)


def test_a_non_finite_deadline_is_never_sent():
    with pytest.raises(ProtocolError):
        messages.encode(Fence(float("nan")))


# --- the process ---------------------------------------------------------------------------------


def test_watchdog_imports_only_the_standard_library_and_its_four_modules():
    code = textwrap.dedent(
        """
        import sys
        before = set(sys.modules)
        import spiffctl.lease.watchdog
        new = sorted(m for m in set(sys.modules) - before)
        foreign = [m for m in new if m.split('.')[0] not in sys.stdlib_module_names and not m.startswith('spiffctl')]
        print(sorted(m for m in new if m.startswith('spiffctl')), foreign)
        """
    )
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True).stdout
    expected = [
        "spiffctl",
        "spiffctl.lease",
        "spiffctl.lease.clock",
        "spiffctl.lease.messages",
        "spiffctl.lease.watchdog",
        "spiffctl.util",
        "spiffctl.util.prctl",
        "spiffctl.util.procs",
    ]
    assert out.strip() == f"{expected} []"


class Dog:
    """A watchdog started like the guard starts it, with both pipes in the test's hands."""

    def __init__(self, tmp: Path, script: str, *, fence: float = 60.0, term_grace: float = 0.3, **env: str) -> None:
        path = tmp / "script"
        path.write_text("#!/bin/sh\n" + script + "\n")
        path.chmod(0o755)
        control_r, self.control = os.pipe()
        self.report, report_w = os.pipe()
        cmd = [sys.executable, "-I", "-m", "spiffctl.lease.watchdog", "--control", str(control_r)]
        cmd += ["--report", str(report_w), "--fence", repr(clock.now() + fence), "--term-grace", repr(term_grace)]
        cmd += ["--cwd", str(tmp), "--", str(path)]
        self.proc = subprocess.Popen(
            cmd, pass_fds=(control_r, report_w), env={**os.environ, **env}, start_new_session=True, cwd=tmp
        )
        os.close(control_r)
        os.close(report_w)
        self.reader = messages.Reader(REPORTS)

    def send(self, data: bytes) -> None:
        os.write(self.control, data)

    def reports(self, timeout: float = 10) -> list[object]:
        """Everything reported until the watchdog closes its end."""
        got: list[object] = []
        os.set_blocking(self.report, True)
        while chunk := os.read(self.report, 4096):
            got += self.reader.feed(chunk)
        self.proc.wait(timeout)
        return got

    def close(self) -> None:
        for fd in (self.control, self.report):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def dogs():
    made: list[Dog] = []

    def make(tmp: Path, script: str, **kwargs) -> Dog:
        made.append(Dog(tmp, script, **kwargs))
        return made[-1]

    yield make
    for dog in made:
        dog.close()


def started_pid(reports: list[object]) -> int:
    assert isinstance(reports[0], Started)
    return reports[0].pid


@pytest.mark.parametrize(("script", "code"), [("exit 3", 3), ("kill -TERM $$", 143), ("kill -KILL $$", 137)])
def test_the_script_s_code_passes_through(tmp_path, dogs, script, code):
    reports = dogs(tmp_path, script).reports()
    assert reports[1:] == [Exited(code, How.OWN)] and started_pid(reports) > 0
    assert exit_code(0x0300) == 3 and exit_code(signal.SIGTERM) == 143


def test_stop_and_fence(tmp_path, dogs):
    stopped = dogs(tmp_path, "exec sleep 30")
    stopped.send(messages.encode(Stop(5.0)))
    assert stopped.reports()[1:] == [Exited(143, How.STOPPED)]  # sleep dies of the SIGTERM
    fenced = dogs(tmp_path, "trap '' TERM; sleep 30 & wait; sleep 30", fence=1.0)
    reports = fenced.reports()
    assert reports[1:] == [Exited(137, How.FENCED)]  # SIGTERM ignored: SIGKILL at the deadline
    assert not pid_alive(started_pid(reports))


def test_a_malformed_control_line_stops_the_script(tmp_path, dogs):
    dog = dogs(tmp_path, "exec sleep 30")
    dog.send(b"fence nan\n")  # a confused renewer must never keep the script running
    assert dog.reports()[1:] == [Exited(143, How.STOPPED)]


def test_closing_the_control_pipe_stops_the_script(tmp_path, dogs):
    dog = dogs(tmp_path, "exec sleep 30")
    os.close(dog.control)
    assert dog.reports()[1:] == [Exited(143, How.STOPPED)]


def test_isolated_from_the_script_s_python_path(tmp_path, dogs):
    shadow = tmp_path / "shadow" / "spiffctl"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise SystemExit('the shadow spiffctl was imported')\n")
    (tmp_path / "spiffctl").symlink_to(shadow)  # the working directory too
    dog = dogs(tmp_path, 'echo "$PYTHONPATH" > seen; exit 0', PYTHONPATH=str(shadow.parent))
    assert dog.reports()[1:] == [Exited(0, How.OWN)]
    assert (tmp_path / "seen").read_text().strip() == str(shadow.parent)  # the script still gets it
    wait_until(lambda: dog.proc.poll() is not None, timeout=5)


def test_the_guard_starts_the_watchdog_without_site_and_it_finds_spiffctl():
    from spiffctl.lease.guard import WATCHDOG

    assert "-S" in WATCHDOG
    result = subprocess.run([*WATCHDOG, "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "spiffctl-watchdog" in result.stdout, result.stderr


def test_the_watchdog_loads_no_dataclasses_typing_subprocess_or_argparse():
    """Each would stay resident in the watchdog for the script's whole life (bench/allinone.py P7)."""
    import spiffctl

    root = str(Path(spiffctl.__file__).resolve().parents[1])
    heavy = {"dataclasses", "inspect", "typing", "subprocess", "threading", "argparse"}
    code = f"import sys, spiffctl.lease.watchdog; print(sorted({heavy!r} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", f"import sys; sys.path.append({root!r}); {code}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "[]"
