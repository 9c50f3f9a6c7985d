"""The lease holder's state machine, without any I/O: scripted histories for every edge of
docs/lease.md, then random histories (hypothesis) with the guarantees checked after every step.

Time is a number passed in; the store's answers, the watchdog's reports and signals are events
these tests make up, the way the shell (spiffctl/lease/guard.py) turns the world into events.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from spiffctl.lease import machine as machine_module
from spiffctl.lease.machine import (
    Acquire,
    Acquired,
    Bug,
    Checked,
    CheckStore,
    Exit,
    GroupKilled,
    HeldBy,
    KillGroup,
    Lost,
    Machine,
    Names,
    Phase,
    ProtocolViolation,
    Release,
    Released,
    Renew,
    Renewed,
    Say,
    Signal,
    StartChild,
    StartWarm,
    StoreDown,
    StoreRefused,
    Tick,
    WatchdogGone,
    WriteState,
)
from spiffctl.lease.messages import Exited, Failed, Fence, Go, How, Loaded, LoadFailed, Started, Stop
from spiffctl.lease.timing import Timings, local_deadline
from spiffctl.util.errors import internal_error

ROOT = Path(machine_module.__file__).resolve().parents[3]  # the folder that holds spiffctl/
NAMES = Names(
    script="start_blocking_apscheduler",
    script_path="/app/bin/start_blocking_apscheduler",
    store="Redis redis://cache:6379/0 (SPIFFCTL_LOCK_URL)",
    store_kind="Redis",
    config="SPIFFCTL_LOCK_URL (redis://cache:6379/0)",
    fix="check SPIFFCTL_LOCK_URL",
    key="spiffctl:background:abc",
)
SIGTERM, SIGINT = 15, 2


# --- the machine does no I/O ---------------------------------------------------------------------


def source_of(name: str) -> Path | None:
    """The file of module ``name`` (a package's ``__init__.py``), None when it is not a module."""
    path = ROOT / name.replace(".", "/")
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports_of(name: str) -> set[str]:
    """Every module ``name`` imports, a submodule named in ``from package import submodule`` too."""
    source = source_of(name)
    assert source is not None, name
    found: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names if source_of(f"{module}.{a.name}") is not None}
    return found


MACHINE = {
    f"spiffctl.lease.machine{sub}"
    for sub in ("", ".io", ".common", ".standby", ".waiting", ".supervising", ".releasing", ".renewal", ".warmchild")
}


def test_the_machine_imports_nothing_that_does_io():
    """Its own imports and theirs, all the way down: dataclasses, enum, typing (collections.abc for
    a type hint), the machine's own modules and three pure ones (``spiffctl.util.errors`` only for
    the exit codes and the internal-error line)."""
    allowed = {"__future__", "collections.abc", "dataclasses", "enum", "typing"}
    pure = {"spiffctl.lease.messages", "spiffctl.lease.timing", "spiffctl.util.errors"}
    seen, todo = set(), ["spiffctl.lease.machine"]
    while todo:
        name = todo.pop()
        seen.add(name)
        for imported in imports_of(name):
            if imported.startswith("spiffctl"):
                assert imported in MACHINE | pure, f"{name} imports {imported}"
                if imported not in seen:
                    todo.append(imported)
            else:
                assert imported in allowed, f"{name} imports {imported}"
    assert seen == MACHINE | pure


# --- scripted histories --------------------------------------------------------------------------


class Script:
    """Drives a machine the way the shell does and keeps every action."""

    def __init__(self, ttl: float = 15.0, stop_grace: float = 8.0, *, warm: bool = False) -> None:
        self.t = Timings(ttl, stop_grace)
        self.m = Machine(self.t, NAMES, warm=warm)
        self.now = 0.0
        self.actions: list[object] = []

    def __call__(self, event: object, at: float | None = None) -> list[object]:
        if at is not None:
            assert at >= self.now
            self.now = at
        out = self.m.step(event, self.now)  # type: ignore[arg-type]
        self.actions += out
        return out

    def deadline(self, t0: float | None = None) -> float:
        return local_deadline(self.now if t0 is None else t0, self.t.ttl)

    def holding(self, *, proven: bool = True, epoch: int = 7) -> list[object]:
        """From a fresh start to holding the lease (and, when proven, starting the child)."""
        assert self(Tick()) == [CheckStore()]
        assert self(Checked(None)) == [Acquire()]
        return self(Acquired(epoch, self.deadline(), proven, "epoch 6 was released cleanly"))

    def fail_renewals_until(self, end: float, detail: str = "timed out") -> None:
        """Tick whenever the machine asks to, until ``end``; answer every renewal with an outage."""
        while (wake := self.m.wakeup()) is not None and wake <= end:
            out = self(Tick(), at=max(wake, self.now))
            if out and out[-1] == Renew():
                self(StoreDown(detail))

    def running(self, pid: int = 42) -> None:
        out = self.holding()
        assert StartChild(7, self.deadline(0.0), self.t.term_grace) in out
        self(Started(pid))


def said(actions: list[object], text: str) -> bool:
    return any(isinstance(a, Say) and text in a.text for a in actions)


def of(actions: list[object], kind: type) -> list[object]:
    return [a for a in actions if isinstance(a, kind)]


def test_timings_of_the_docs_table():
    """docs/lease.md, TTL 15: renew 5 s, poll 0.5 s, timeout 1.5 s, SIGTERM at 12.05 s, SIGKILL at 14.55 s."""
    t = Timings(15.0, stop_grace=8)
    assert (t.renew_every, t.poll, t.request_timeout, t.term_grace) == (5.0, 0.5, 1.5, 2.5)
    assert local_deadline(0.0, 15.0) == pytest.approx(14.55)
    assert local_deadline(0.0, 15.0) - t.term_grace == pytest.approx(12.05)
    assert t.unproven_wait == pytest.approx(15.15)
    assert Timings(3.0, 8).poll == 0.3 and Timings(600.0, 8).term_grace == 5.0


def test_standby_checks_the_store_once_then_polls_and_names_the_holder_once():
    s = Script()
    assert s(Tick()) == [CheckStore()]
    assert s(Checked(None)) == [Acquire()]
    out = s(HeldBy("box pid 9 since 2026-11-01 10:00:00 UTC, epoch 3"))
    assert said(out, "standby: the Background lease is held by box pid 9") and said(out, "ttl 15 s")
    assert WriteState("standby", None, None, "box pid 9 since 2026-11-01 10:00:00 UTC, epoch 3", True, 0.5) in out
    assert s(Tick(), at=0.4) == []
    assert s.m.wakeup() == 0.5
    assert s(Tick(), at=0.5) == [Acquire()]  # checked once: no CheckStore again
    assert not said(s(HeldBy("box pid 9 since 2026-11-01 10:00:00 UTC, epoch 3")), "held by")
    s(Tick(), at=1.0)
    assert said(s(HeldBy("other pid 1, epoch 4")), "held by other pid 1")


def test_standby_outage_is_said_once_and_the_store_is_checked_again():
    s = Script()
    s(Tick())
    out = s(StoreDown("connection refused"))
    assert said(out, "standby: Redis redis://cache:6379/0 (SPIFFCTL_LOCK_URL) is unreachable (connection refused)")
    assert of(out, WriteState)[0].store_ok is False  # type: ignore[attr-defined]
    assert s(Tick(), at=0.5) == [CheckStore()]
    assert not said(s(StoreDown("connection refused")), "unreachable")
    assert s(Tick(), at=1.0) == [CheckStore()]


def test_standby_refused_exits_69_and_an_evicting_store_78():
    s = Script()
    s(Tick())
    assert s(StoreRefused("authentication failed: invalid username-password pair")) == [
        Exit(
            69,
            "lease: Redis redis://cache:6379/0 (SPIFFCTL_LOCK_URL) refused us: authentication failed: invalid "
            "username-password pair; check SPIFFCTL_LOCK_URL",
        )
    ]
    s = Script()
    s(Tick())
    [exit_] = s(Checked("Redis has maxmemory-policy allkeys-lru"))
    assert exit_ == Exit(78, "SPIFFCTL_LOCK_URL (redis://cache:6379/0): Redis has maxmemory-policy allkeys-lru")
    assert s(Tick(), at=5.0) == []  # done: nothing more


def test_standby_signal_exits_zero():
    s = Script()
    s(Tick())
    s(Checked(None))
    s(HeldBy("box pid 9"))
    assert s(Signal(SIGTERM), at=0.2) == [Say("stopped by signal 15 while on standby"), Exit(0)]


def test_proven_grant_starts_the_child_at_once_under_the_lease_deadline():
    s = Script()
    out = s.holding(epoch=7)
    assert WriteState("holder", 7, None, None, True, 5.0) in out
    assert said(out, "acquired the lease, epoch 7 (epoch 6 was released cleanly); starting start_blocking_apscheduler")
    assert out[-1] == StartChild(epoch=7, fence=local_deadline(0.0, 15.0), term_grace=2.5)
    out = s(Started(42), at=0.1)
    assert said(out, "started start_blocking_apscheduler (pid 42, epoch 7) under the lease")
    assert WriteState("holder", 7, 42, None, True, 5.0) in out


def test_warm_standby_loads_then_takes_over_with_go_before_the_deadline():
    s = Script(warm=True)
    assert s(Tick()) == [StartWarm(term_grace=2.5), CheckStore()]  # loading never waits for the store
    assert s(Checked(None)) == [Acquire()]
    s(HeldBy("box pid 9"))
    assert said(s(Started(42), at=0.1), "warm child (pid 42) is loading the app with the backend's python")
    out = s(Loaded(), at=1.0)
    assert said(out, "warm standby: the app is loaded (in 1.0 s); the scheduler starts as soon as we hold the lease")
    assert not of(s.actions, Go)  # loaded, not told to go: not a scheduler
    out = s(Acquired(7, s.deadline(), True, "epoch 6 was released cleanly"))
    assert said(out, "acquired the lease, epoch 7 (epoch 6 was released cleanly); starting the scheduler")
    assert said(out, "starting the scheduler in the warm child (epoch 7, warm since 0.0 s)")
    assert out[-1] == Go(s.deadline(1.0), 7) and not of(out, StartChild)


def test_warm_load_failure_backs_off_and_leaves_the_lease_alone():
    s = Script(warm=True)
    s(Tick())
    s(Checked(None))
    s(HeldBy("box pid 9"))
    s(Started(42), at=0.1)
    out = s(LoadFailed(False, "OperationalError: connection refused"), at=1.0)
    assert said(out, "the warm child could not load the app: OperationalError: connection refused; trying again in 1 s")
    assert out[-1] == Acquire()  # the lease's polling goes on as before
    s(HeldBy("box pid 9"))
    assert s(Exited(1, How.OWN), at=1.1) == []  # its end was announced: nothing more to say
    started = []
    while not started:
        out = s(Tick(), at=s.m.wakeup())
        started = of(out, StartWarm)
        if out[-1] == Acquire():
            s(HeldBy("box pid 9"))
    assert s.now == 2.0  # one pause after the failure, never blocking the polls in between
    assert not of(s.actions, Release) and not of(s.actions, Go)


def test_unproven_grant_holds_without_a_child_for_one_ttl_renewing():
    s = Script()
    out = s.holding(proven=False)
    assert not of(out, StartChild) and said(out, "waiting 15.2 s before starting")
    assert s.m.phase is Phase.WAITING
    # The wait is declared in the state (healthcheck: starting; status: WAITING), with its end and reason.
    declared = of(out, WriteState)[-1]
    assert declared.starts_at == pytest.approx(15.15)  # type: ignore[attr-defined]
    assert declared.waits_for.startswith("the safe first start of start_blocking_apscheduler")  # type: ignore[attr-defined]
    waiting = WriteState("holder", 7, None, None, True, 5.0, declared.starts_at, declared.waits_for)  # type: ignore[attr-defined]
    assert s(Tick(), at=5.0) == [Renew()]
    assert s(Renewed(s.deadline(5.0)), at=5.01) == [waiting]
    s(Tick(), at=10.01)
    s(Renewed(s.deadline(10.01)), at=10.02)
    assert s(Tick(), at=15.02) == [Renew()]
    assert s(Renewed(s.deadline(15.02)), at=15.03) == [waiting]
    assert s(Tick(), at=15.14) == []
    out = s(Tick(), at=15.15)
    assert out == [StartChild(7, local_deadline(15.02, 15.0), 2.5)]


def test_unproven_wait_ends_on_a_lost_lease_or_a_passed_deadline():
    s = Script()
    s.holding(proven=False)
    s(Tick(), at=5.0)
    out = s(Lost("the lease key vanished from Redis"), at=5.1)
    assert said(out, "lost the lease before starting: the lease key vanished") and out[-1] == Acquire()
    s = Script()
    s.holding(proven=False)
    s(Tick(), at=5.0)
    s(StoreDown("timed out"), at=6.5)
    s.fail_renewals_until(14.5)
    assert len(of(s.actions, Renew)) == 1 + 16  # every poll interval
    out = s(Tick(), at=14.55)
    assert said(out, "lost the lease before starting: Redis unreachable for 8.1 s (timed out)")
    assert not of(out, Release) and out[-1] == CheckStore()  # never released: someone may hold it now


def test_signal_while_waiting_releases_and_exits_zero():
    s = Script()
    s.holding(proven=False)
    assert s(Signal(SIGINT), at=1.0) == [Release()]
    out = s(Released(True))
    assert said(out, "stopped by signal 2 before start_blocking_apscheduler started; lease released")
    assert out[-1] == Exit(0)


def test_renewals_every_third_of_the_ttl_extend_the_fence():
    s = Script()
    s.running()
    assert s(Tick(), at=4.9) == []
    out = s(Tick(), at=5.0)
    assert out[-1] == Renew()
    assert s(Renewed(s.deadline(5.0)), at=5.05) == [Fence(local_deadline(5.0, 15.0))]
    assert s.m.wakeup() == pytest.approx(10.0)


def test_renewal_outage_retries_every_poll_and_says_it_once():
    s = Script()
    s.running()
    s(Tick(), at=5.0)
    out = s(StoreDown("timed out"), at=6.5)
    assert said(out, "cannot renew the lease at Redis redis://cache:6379/0 (SPIFFCTL_LOCK_URL): timed out")
    assert said(out, "start_blocking_apscheduler will be stopped in 8.0 s unless Redis answers")
    assert s.m.wakeup() == 7.0
    assert s(Tick(), at=7.0)[-1] == Renew()
    assert not said(s(StoreDown("timed out"), at=7.1), "cannot renew")
    s(Tick(), at=7.6)
    out = s(Renewed(s.deadline(7.6)), at=7.7)
    assert said(out, "renewed the lease again after 1.2 s of failures") and Fence(local_deadline(7.6, 15.0)) in out


def test_renewal_refused_while_holding_keeps_trying():
    s = Script()
    s.running()
    s(Tick(), at=5.0)
    out = s(StoreRefused("authentication failed: WRONGPASS"), at=5.1)
    assert not of(out, Exit) and said(out, "cannot renew the lease")
    assert s(Tick(), at=5.6)[-1] == Renew()


def test_outage_until_the_deadline_leaves_the_fence_to_the_watchdog_then_releases():
    s = Script()
    s.running()
    s(Tick(), at=5.0)
    s(StoreDown("connection refused"), at=5.01)
    s.fail_renewals_until(14.5, "connection refused")
    assert not of(s.actions, Fence)  # the watchdog still has the fence sent at the start
    out = s(Exited(137, How.FENCED), at=14.56)
    assert out == [Release()]
    out = s(Released(False, "connection refused"), at=14.6)
    assert said(out, "was fenced (code 137) because the lease was lost: could not renew for 9.6 s (connection refused)")
    assert said(out, "could not release the lease (connection refused); it expires by itself")
    assert out[-1] == CheckStore()  # back to standby, store checked again after the outage


def test_lost_lease_stops_the_child_with_term_grace_and_never_releases():
    s = Script()
    s.running()
    s(Tick(), at=5.0)
    out = s(Lost("our key expired in Redis; the lease is now held by b pid 2"), at=5.01)
    assert said(out, "lost the lease: our key expired in Redis") and out[-1] == Stop(2.5)
    assert not of(s(Tick(), at=10.0), Renew)
    out = s(Exited(143, How.STOPPED), at=10.1)
    assert not of(out, Release) and said(out, "was fenced (code 143) because the lease was lost: our key expired")
    assert out[-1] == Acquire()


def test_sigterm_stops_the_child_then_releases_and_exits_with_its_code():
    s = Script()
    s.running()
    out = s(Signal(SIGTERM), at=1.0)
    assert said(out, "signal 15: stopping start_blocking_apscheduler (up to 8 s), then releasing")
    assert out[-1] == Stop(8.0)
    s(Tick(), at=5.0)  # it keeps renewing while the script exits
    assert s(Renewed(s.deadline(5.0)), at=5.01) == [Fence(local_deadline(5.0, 15.0))]
    assert s(Signal(SIGINT), at=6.0) == [Stop(0.0)]  # the second signal: kill at once
    assert s(Signal(SIGTERM), at=6.1) == []
    assert s(Exited(143, How.STOPPED), at=6.2) == [Release()]
    out = s(Released(True))
    assert said(out, "start_blocking_apscheduler stopped with code 143; lease released") and out[-1] == Exit(143)


def test_child_exiting_by_itself_releases_and_passes_its_code():
    s = Script()
    s.running()
    assert s(Exited(3, How.OWN), at=2.0) == [Release()]
    out = s(Released(False))
    assert said(out, "exited by itself with code 3; the lease was no longer ours") and out[-1] == Exit(3)


@pytest.mark.parametrize("code", [127, 126])
def test_script_that_cannot_be_executed(code):
    s = Script()
    s.holding()
    assert s(Failed(code, "No such file or directory"), at=0.1) == [Release()]
    assert s(Released(True)) == [
        Exit(code, "cannot execute /app/bin/start_blocking_apscheduler: No such file or directory (check its #! line)")
    ]


def test_watchdog_late_is_backed_up_by_the_belt_once():
    s = Script()
    s.running()
    fence = local_deadline(0.0, 15.0)
    s(Tick(), at=5.0)
    s(StoreDown("timed out"), at=6.5)
    assert s.m.wakeup() == 7.0
    s.fail_renewals_until(fence + 0.49)  # the watchdog reports nothing: frozen
    assert not of(s.actions, KillGroup)
    out = s(Tick(), at=fence + 0.5)
    assert KillGroup(42, wait=False) in out and said(out, "the watchdog missed the deadline")
    if out[-1] == Renew():
        s(StoreDown("timed out"))
    s.fail_renewals_until(fence + 2.0)
    assert len(of(s.actions, KillGroup)) == 1  # once
    assert s(Exited(137, How.FENCED), at=fence + 2.1) == [Release()]


def test_watchdog_gone_kills_the_group_and_waits_until_it_is_gone():
    s = Script()
    s.running()
    assert s(WatchdogGone(), at=2.0) == [KillGroup(42, wait=True)]
    out = s(GroupKilled(False))
    assert said(out, "still there after SIGKILL") and out[-1] == KillGroup(42, wait=True)
    out = s(GroupKilled(True))
    assert said(out, "the watchdog died unexpectedly; killed start_blocking_apscheduler's process group")
    assert out[-1] == Release()
    assert s(Released(True))[-1] == Acquire()


def test_watchdog_gone_before_it_started_the_script_is_an_internal_error():
    s = Script()
    s.holding()
    [exit_] = s(WatchdogGone(), at=0.2)
    assert isinstance(exit_, Exit) and exit_.code == 70 and "watchdog exited before it started" in str(exit_.error)


def test_too_late_to_start_releases_and_goes_back_to_standby():
    s = Script()
    s(Tick())
    s(Checked(None))
    out = s(Acquired(7, local_deadline(0.0, 15.0), True, "released cleanly"), at=12.1)  # a frozen renewer
    assert not of(out, StartChild) and out[-1] == Release()
    out = s(Released(True))
    assert said(out, "local deadline is too close to start") and out[-1] == Acquire()


def test_watchdog_too_late_to_start_goes_back_to_standby():
    s = Script()
    s.holding()
    assert s(Exited(0, How.FENCED), at=0.5) == [Release()]
    assert said(s(Released(True)), "the local deadline passed without a successful renewal")


def test_a_bug_fences_the_child_before_exit_70():
    s = Script()
    s.running()
    out = s(Bug("TypeError: unsupported operand"), at=1.0)
    assert out == [Stop(0.0), KillGroup(42, wait=True), Exit(70, internal_error("TypeError: unsupported operand"))]
    s = Script()
    s.holding()  # watchdog started, child not reported yet
    assert s(Bug("KeyError: 'x'"), at=0.1) == [Stop(0.0), Exit(70, internal_error("KeyError: 'x'"))]
    s = Script()
    s(Tick())
    assert s(Bug("ValueError: y"), at=0.1) == [Exit(70, internal_error("ValueError: y"))]  # even mid-request


def test_events_out_of_protocol_are_refused():
    s = Script()
    with pytest.raises(ProtocolViolation):
        s(Renewed(10.0))  # nobody asked
    s(Tick())
    with pytest.raises(ProtocolViolation):
        s(Tick())  # the answer to CheckStore must come first
    with pytest.raises(ProtocolViolation):
        s(Renewed(10.0))  # the wrong answer
    s = Script()
    with pytest.raises(ProtocolViolation):
        s(Started(1))  # no watchdog


# --- random histories ----------------------------------------------------------------------------


class Histories(RuleBasedStateMachine):
    """A model of the world around the machine: store, watchdog, child and signals, at random times.

    The model's own bookkeeping (what was granted, what the watchdog was told, whether the child
    is alive) is the yardstick for the guarantees, checked in :meth:`step` after every event.
    """

    @initialize(
        ttl=st.sampled_from([3.0, 15.0, 600.0]),
        stop_grace=st.sampled_from([0.0, 8.0]),
        weather=st.sampled_from([(6, 1), (1, 1), (1, 6)]),
        watchdog_frozen=st.booleans(),
        warm=st.booleans(),
    )
    def start(self, ttl: float, stop_grace: float, weather: tuple[int, int], watchdog_frozen: bool, warm: bool) -> None:
        self.t = Timings(ttl, stop_grace)
        self.fair, self.stormy = weather  # renewals answered vs timing out
        self.watchdog_frozen = watchdog_frozen
        self.m = Machine(self.t, NAMES, warm=warm)
        self.now = 0.0
        self.asked_at = 0.0
        self.pending: object | None = None
        self.done = False
        self.holding = False
        self.acquired_at = 0.0
        self.unproven = False
        self.granted = 0.0  # local deadline of the last successful acquire/renew
        self.watchdog = False
        self.started = False
        self.child: int | None = None  # alive and reported
        self.fence = 0.0  # what the watchdog was last told
        self.belted = False
        self.stopped = False  # a Stop reached the watchdog
        self.signals = 0
        self.lost = False
        self.last_code: int | None = None
        self.failed_code: int | None = None
        self.next_pid = 100
        self.others_until = 0.0  # another replica's script may run until then (its local deadline)
        self.touched = False  # a hand removed or changed our key or record since our last renewal
        # A warm child is a scheduler only once armed (told to go): every guarantee about "the
        # child" is about an armed one; an unarmed one may live in any phase.
        self.warm_child = False
        self.armed = False
        self.loaded = False
        self.step(Tick())

    # -- the yardstick ------------------------------------------------------------------------

    def step(self, event: object) -> None:
        out = self.m.step(event, self.now)  # type: ignore[arg-type]
        for action in out:
            self.check(event, action, out)
        if not self.done and self.pending is None and self.armed and self.child is not None and not self.belted:
            # Guarantee: past the deadline plus the belt, a child still reported alive is killed by us.
            assert self.now <= self.fence + self.t.belt, "child alive past the deadline + belt, no kill"
        if isinstance(event, Bug) and (self.child is not None or self.watchdog):
            kills = [a for a in out if isinstance(a, (KillGroup, Stop))]
            assert kills and out.index(kills[0]) < len(out) - 1 and isinstance(out[-1], Exit)
            if self.child is not None:
                assert KillGroup(self.child, wait=True) in out
        if isinstance(event, Lost) and self.watchdog and self.armed:
            assert Stop(self.t.term_grace) in out, "a lost lease stops the child at once"

    def check(self, event: object, action: object, out: list[object]) -> None:
        assert not self.done, "an action after Exit"
        if isinstance(event, Bug):
            pass  # a bug may strike mid-request: the machine fences and exits, asking nothing more
        elif isinstance(action, (CheckStore, Acquire, Renew, Release)) or (
            isinstance(action, KillGroup) and action.wait
        ):
            assert self.pending is None, "two requests at once"
            self.pending, self.asked_at = action, self.now
        if isinstance(action, (CheckStore, Acquire)):
            self.holding, self.last_code = False, None
        if isinstance(action, StartWarm):
            assert not self.watchdog and self.child is None, "two children"
            self.watchdog, self.started, self.warm_child, self.armed, self.loaded = True, False, True, False, False
            self.stopped, self.belted = False, False
        if isinstance(action, Go):
            # The new guarantee: no go unless holding, and before the fence's SIGTERM time.
            assert self.holding, "go without the lease"
            assert self.watchdog and self.warm_child and not self.armed, "go to no warm child, or twice"
            assert action.until == self.granted, "go under another deadline than the lease's"
            assert self.now < self.granted - self.t.term_grace, "go with the deadline at hand"
            if self.unproven:
                assert self.now >= self.acquired_at + self.t.unproven_wait, "go before the unproven wait"
            self.armed, self.fence, self.belted, self.stopped = True, action.until, False, False
            self.last_code = None
        if isinstance(action, StartChild):
            assert self.holding, "a standby started a child"
            assert not self.watchdog and self.child is None, "two children"
            self.warm_child, self.armed = False, True
            assert action.fence == self.granted and action.fence <= self.granted
            assert self.now < self.granted - self.t.term_grace, "started with the deadline at hand"
            if self.unproven:
                assert self.now >= self.acquired_at + self.t.unproven_wait, "started before the unproven wait"
            assert self.now >= self.others_until, "started while another holder's script may run"
            self.watchdog, self.started, self.fence, self.belted, self.stopped = True, False, action.fence, False, False
            self.last_code = None
        if isinstance(action, Fence):
            assert self.watchdog and self.armed, "a fence for a child that is not a scheduler"
            assert action.until <= self.granted, "a fence later than the lease"
            assert action.until >= self.fence, "a fence moved earlier: pointless"
            self.fence = action.until
        if isinstance(action, Stop):
            assert self.watchdog
            self.stopped = True
        if isinstance(action, KillGroup):
            assert self.child is not None and action.pgid == self.child, "killed something else"
            self.belted = self.belted or self.armed
        if isinstance(action, Release):
            assert not (self.watchdog and self.armed), "released while the child may run"
        if isinstance(action, WriteState) and action.mode == "holder":
            assert action.child_pid == self.child, "the state file names another child"
        if isinstance(action, WriteState):
            unarmed_warm = self.watchdog and self.warm_child and not self.armed
            assert action.warm is None or unarmed_warm, "a warm child declared, but none runs unarmed"
        if isinstance(action, Exit):
            self.done = True
            assert self.child is None or not self.armed or isinstance(event, Bug), "exited with the child alive"
            if self.watchdog and not self.armed and not isinstance(event, Bug):
                assert Stop(0.0) in out, "exited leaving a warm child behind"
            if action.error is None and self.last_code is not None:
                assert action.code == self.last_code, "exit code is not the child's"
            elif action.error is None:
                assert action.code == 0 and self.signals > 0, "a standby left without being told to"
            elif action.code == 70:
                assert isinstance(event, (Bug, WatchdogGone))
            elif action.code in (69, 78):
                assert isinstance(event, (StoreRefused, Checked))
            else:
                assert action.code == self.failed_code

    @invariant()
    def agrees_with_the_model(self) -> None:
        if not self.done:
            # A standby (or a holder still waiting) never has a scheduler.
            assert not self.armed or self.m.phase is Phase.SUPERVISING
            assert self.m.phase is not Phase.DONE
        else:
            assert self.m.phase is Phase.DONE

    # -- the world ----------------------------------------------------------------------------
    #
    # Hypothesis picks among the enabled rules evenly, so events that end a run (a bug, a refusal,
    # a signal to a standby) are drawn from lists where they are rare, and each run has its own
    # weather: how often the store answers and the watchdog acts, so that long outages, late
    # watchdogs and frozen renewers all come up.

    def answering(self, kind: type) -> bool:
        return not self.done and isinstance(self.pending, kind)

    def idle(self) -> bool:
        return not self.done and self.pending is None

    def answer(self, event: object, latency: float) -> None:
        self.pending = None
        self.now = self.asked_at + latency
        self.step(event)

    @precondition(lambda self: self.idle())
    @rule(dt=st.floats(0.0, 1.0) | st.floats(0.0, 20.0))
    def time_passes(self, dt: float) -> None:
        self.now += dt * self.t.ttl / 10
        self.step(Tick())

    @precondition(lambda self: self.answering(CheckStore))
    @rule(problem=st.sampled_from([None] * 19 + ["evicts"]), latency=st.floats(0, 0.1))
    def store_checked(self, problem: str | None, latency: float) -> None:
        self.answer(Checked(problem), latency)

    @precondition(lambda self: self.answering(Acquire))
    @rule(data=st.data(), latency=st.floats(0, 0.2))
    def store_answers_acquire(self, data: st.DataObject, latency: float) -> None:
        outcome = data.draw(
            st.sampled_from(["held"] * 6 + ["proven"] * 6 + ["unproven"] * 3 + ["down"] * 4 + ["refused"])
        )
        if outcome == "proven" and self.asked_at < self.others_until:
            # The store's contract: no proof while the holder a hand stripped of its key may run.
            outcome = "unproven"
        if outcome in ("proven", "unproven"):
            self.touched = False
            self.granted = local_deadline(self.asked_at, self.t.ttl)
            self.holding, self.unproven, self.lost = True, outcome == "unproven", False
            self.acquired_at = self.asked_at + latency
            self.answer(Acquired(self.next_pid, self.granted, outcome == "proven", "why"), latency)
        elif outcome == "held":
            self.answer(HeldBy("b pid 2"), latency)
        elif outcome == "down":
            self.answer(StoreDown("timed out"), self.t.request_timeout)
        else:
            self.answer(StoreRefused("authentication failed"), latency)

    @precondition(lambda self: self.answering(Renew))
    @rule(data=st.data(), latency=st.floats(0, 0.2))
    def store_answers_renew(self, data: st.DataObject, latency: float) -> None:
        outcome = data.draw(st.sampled_from(["renewed"] * self.fair + ["down"] * self.stormy + ["lost", "refused"]))
        if self.touched and outcome == "renewed":
            outcome = "lost"  # the key is gone or someone else's, or our record is: never renewed
        if outcome == "renewed":
            self.granted = local_deadline(self.asked_at, self.t.ttl)
            self.answer(Renewed(self.granted), latency)
        elif outcome == "lost":
            self.lost = True
            self.answer(Lost("the lease key vanished"), latency)
        elif outcome == "down":
            self.answer(StoreDown("timed out"), self.t.request_timeout)
        else:
            self.answer(StoreRefused("NOPERM"), latency)

    @precondition(lambda self: self.idle())
    @rule(
        hand=st.sampled_from([None] * 6 + ["DEL", "SET x PX 50", "PEXPIRE 1", "DEL holder", "DEL released"]),
        age=st.floats(0.0, 1.0),
    )
    def a_hand_on_the_key(self, hand: str | None, age: float) -> None:
        """An operator touches the lease's keys: ours if we hold it, else another holder's.

        Another holder last renewed ``age`` TTLs ago; its script may run until its local deadline,
        and the store proves nothing until then: its next acquisitions answer "not proven".
        """
        if hand is None:
            return
        if self.holding and not self.lost:
            self.touched = True
        else:
            renewed_at = self.now - age * self.t.ttl
            self.others_until = max(self.others_until, local_deadline(renewed_at, self.t.ttl))

    @precondition(lambda self: self.answering(Release))
    @rule(outcome=st.sampled_from([(True, None), (False, None), (False, "timed out")]))
    def store_answers_release(self, outcome: tuple[bool, str | None]) -> None:
        self.answer(Released(*outcome), 0.01)

    @precondition(lambda self: self.answering(KillGroup))
    @rule(gone=st.sampled_from([True, True, True, False]))
    def group_killed(self, gone: bool) -> None:
        if gone:
            self.child, self.armed = None, False
        self.answer(GroupKilled(gone), 0.05 if gone else 2.0)

    def gone(self, code: int | None = None) -> None:
        """The child's whole group is gone; an unarmed warm child's end has no code to pass on."""
        if self.armed and code is not None:
            self.last_code = code
        self.watchdog, self.child, self.armed, self.warm_child = False, None, False, False

    @precondition(lambda self: self.idle() and self.watchdog and not self.started)
    @rule(outcome=st.sampled_from(["started"] * 8 + ["too late", "126", "127"]))
    def watchdog_starts(self, outcome: str) -> None:
        if self.warm_child and outcome == "too late":
            outcome = "started"  # an unfenced warm watchdog always starts its child
        if self.warm_child and outcome in ("126", "127"):
            self.gone()
            self.step(Failed(int(outcome), "No such file or directory"))
        elif outcome == "started":
            self.started, self.child = True, self.next_pid
            self.next_pid += 1
            self.step(Started(self.child))
        elif outcome == "too late":
            self.gone(0)
            self.step(Exited(0, How.FENCED))
        else:
            self.gone()
            self.failed_code = int(outcome)
            self.step(Failed(int(outcome), "No such file or directory"))

    @precondition(lambda self: self.idle() and self.warm_child and self.started and not self.loaded)
    @rule(outcome=st.sampled_from(["loaded"] * 6 + ["failed", "unusable"]))
    def warm_child_loads(self, outcome: str) -> None:
        self.loaded = True
        if outcome == "loaded":
            self.step(Loaded())
            return
        self.step(LoadFailed(outcome == "unusable", "OperationalError: connection refused"))
        self.child_exits_by_itself(1 if outcome == "failed" else 3, True)

    @precondition(lambda self: self.idle() and self.child is not None)
    @rule(code=st.integers(0, 255), now=st.sampled_from([False] * 4 + [True]))
    def child_exits_by_itself(self, code: int, now: bool) -> None:
        if self.idle() and self.child is not None and now:
            warm_restart = self.warm_child and self.armed and self.signals == 0 and not self.lost
            self.gone(code)
            if warm_restart:
                self.last_code = None  # a warm scheduler that ended is restarted, not passed on
            self.step(Exited(code, How.OWN))

    @precondition(
        lambda self: (
            self.idle()
            and self.child is not None
            and (self.stopped or (self.armed and self.now >= self.fence - self.t.term_grace))
        )
    )
    @rule(punctual=st.booleans())
    def watchdog_enforces(self, punctual: bool) -> None:
        """The watchdog acts on its fence or a stop; unless it is "frozen" (never acts) this run."""
        if self.watchdog_frozen:
            return
        code = 137 if not punctual or self.now >= self.fence else 143
        self.gone(code)
        self.step(Exited(code, How.STOPPED if self.stopped else How.FENCED))

    @precondition(lambda self: self.idle() and self.belted and self.child is not None)
    @rule()
    def belt_kill_lands(self) -> None:
        self.watchdog_frozen = False  # thawed: it reaps the killed script and reports
        self.gone(137)
        self.step(Exited(137, How.FENCED))

    @precondition(lambda self: self.idle() and self.watchdog)
    @rule(dies=st.sampled_from([False] * 9 + [True]))
    def watchdog_dies(self, dies: bool) -> None:
        if dies:
            armed, child = self.armed, self.child
            self.watchdog = False
            if child is not None and armed:
                self.last_code = 137
            self.step(WatchdogGone())
            if not armed:
                self.gone()  # the machine killed the unarmed child without waiting for it

    @precondition(lambda self: self.idle())
    @rule(signum=st.sampled_from([None] * 6 + [SIGTERM, SIGINT]))
    def signal_arrives(self, signum: int | None) -> None:
        if signum is not None:
            self.signals += 1
            self.step(Signal(signum))

    @precondition(lambda self: self.done)
    @rule(event=st.sampled_from([Tick(), Signal(SIGTERM), Renewed(1.0), Exited(0, How.OWN)]))
    def after_exit_nothing_happens(self, event: object) -> None:
        self.now += 1.0
        assert self.m.step(event, self.now) == []  # type: ignore[arg-type]

    @precondition(lambda self: not self.done)
    @rule(happens=st.sampled_from([False] * 29 + [True]))
    def a_bug(self, happens: bool) -> None:
        if happens:
            self.step(Bug("TypeError: boom"))


Histories.TestCase.settings = settings(
    max_examples=200, stateful_step_count=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_random_histories = Histories.TestCase
