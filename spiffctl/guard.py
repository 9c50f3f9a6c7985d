"""Runs the Background script under the Redis lease: standby, acquire, start, renew, fence, hand off.

Process tree while holding the lease::

    spiffctl (this module: the renewer; PID 1 in a container)
    └── watchdog          own session: freezing or killing spiffctl's group does not reach it
        └── bin script    own session = the group that is fenced (bash -> uv run -> python)

The renewer renews every ``ttl/3`` and sends each new local deadline to the watchdog over a pipe
(:mod:`spiffctl.watchdog`); the watchdog SIGTERMs the script's group ``term_grace`` before the
deadline and SIGKILLs it at the deadline, and also stops it when the pipe closes (renewer killed).
A frozen renewer therefore cannot keep the script alive past its lease; the renewer in turn kills
the group itself if the watchdog is late or dies. Only when every process is frozen at once (a
paused container, a suspended VM) can nobody act in time: the script is frozen too then, and the
watchdog kills it as soon as it runs again (its deadline is on the shared boot-time clock).

Graceful stop (SIGTERM/SIGINT): stop the script's group (SIGTERM, SIGKILL after ``STOP_GRACE``),
keep renewing while it exits, release the lease (a standby takes over at once) and exit with the
script's code (128+N for signal N); a second signal kills the group at once. A standby that is
stopped exits 0. The script exiting by itself: release, exit with its code. A lost lease (renewal
refused, or Redis unreachable until the deadline): the script is stopped, the reason logged, and
the runner goes back to standby.

State file ``<run dir>/background.json`` (see :mod:`spiffctl.state`), rewritten at every renewal
and standby poll, read by ``spiffctl healthcheck --role background``::

    {"pid": 1,              # this spiffctl process
     "mode": "holder",      # holder | standby | unleased (SPIFFCTL_LOCK=off: the script was exec'd
                            #   in place with this pid; the file is then written once, never refreshed)
     "child_pid": 42,       # the script's pid (= its process group) or null
     "epoch": 7,            # our lease epoch while holder, else null
     "holder": "host pid 9 since ...",  # standby: who holds the lease, if known, else null
     "redis": true,         # the last Redis call succeeded (null: not tried yet)
     "updated": 1793000000.5,  # wall-clock seconds of this write
     "interval": 5.0}       # seconds between rewrites; stale after a few of these means stuck
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from spiffctl import lease, state, watchdog
from spiffctl.errors import NOT_EXECUTABLE, NOT_FOUND, ConfigError, SpiffctlError, UnavailableError
from spiffctl.lockconfig import LOCK, LOCK_OFF_EXPLAINED, LOCK_URL, LockConfig, lock_config
from spiffctl.roles import Role
from spiffctl.settings import Settings
from spiffctl.wait import Say

if TYPE_CHECKING:
    import redis

EPOCH_VAR = "SPIFFCTL_LEASE_EPOCH"
STOP_GRACE = 8.0  # graceful stop: under docker's default 10 s before it sends SIGKILL itself
BELT = 0.5  # the renewer kills the group itself when the watchdog is this late


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


@dataclass(frozen=True)
class Timings:
    """Every interval derives from the TTL so that a small test TTL scales the whole protocol."""

    ttl: float

    @property
    def renew_every(self) -> float:
        return self.ttl / 3  # two renewals may fail before the script is stopped

    @property
    def poll(self) -> float:
        """Standby poll and renewal retry interval: bounds the handoff delay."""
        return _clamp(self.ttl / 10, 0.2, 0.5)

    @property
    def term_grace(self) -> float:
        """SIGTERM this long before the deadline so the script may exit cleanly when fenced."""
        return _clamp(self.ttl / 6, 0.3, 5.0)

    @property
    def request_timeout(self) -> float:
        return _clamp(self.ttl / 10, 0.25, 2.0)


def state_path(env: Mapping[str, str] | None = None) -> Path:
    return state.run_dir(env) / state.BACKGROUND_FILE


def lease_config(settings: Settings, role: Role) -> LockConfig:
    """The lease this role will run under; :class:`ConfigError` when it cannot work.

    ``run`` calls this before waiting for the database, so a missing Redis or a bad TTL is
    reported at once (78) rather than after the wait.
    """
    config = lock_config(settings)
    if config.enabled and config.url is None:
        raise ConfigError(
            f"{LOCK_URL}: not set and the Celery broker is not Redis; the {role.name} role needs a Redis lease so "
            f"that only one scheduler runs: set {LOCK_URL}=redis://host:6379/0, or {LOCK}=off if exactly one "
            f"{role.name} replica runs"
        )
    return config


def run_singleton(
    settings: Settings, config: LockConfig, role: Role, script: Path, env: Mapping[str, str], *, say: Say
) -> None:
    """Run ``script`` as the only one across replicas; returns only when the lease is off (then exec it)."""
    if not config.enabled:
        if not settings.env.get(LOCK_OFF_EXPLAINED):
            say(
                f"warning: {LOCK}=off: the {role.name} role runs without a lease; run exactly one replica of it, "
                "or several schedulers will run at once"
            )
        _write_state(settings.env, mode="unleased", child_pid=os.getpid(), interval=None)
        return
    Guard(settings, config, script, env, say=say).run()


def _write_state(env: Mapping[str, str], **fields: object) -> None:
    data = {"pid": os.getpid(), "child_pid": None, "epoch": None, "holder": None, "redis": None, **fields}
    data["updated"] = time.time()
    try:
        state.write_json(state_path(env), data)
    except OSError:
        pass  # a read-only run dir must not stop the scheduler; healthcheck then reports it


class Guard:
    def __init__(
        self, settings: Settings, config: LockConfig, script: Path, env: Mapping[str, str], *, say: Say
    ) -> None:
        assert config.url is not None
        self.settings = settings
        self.config = config
        self.script = script
        self.env = dict(env)
        self._say = say
        self.times = Timings(config.ttl)
        self.conn: redis.Redis = lease.client(config.url, self.times.request_timeout)
        self.lease = lease.Lease(self.conn, config.key, config.ttl, host=socket.gethostname(), pid=os.getpid())
        self.stop_signal: int | None = None
        self.stop_count = 0
        self.redis_ok: bool | None = None
        self.eviction_checked = False
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)

    # -- plumbing ---------------------------------------------------------------------------

    def say(self, message: str) -> None:
        self._say(self.settings.redactor(f"lease: {message}"))

    def where(self) -> str:
        return f"Redis {self.config.display} ({self.config.source})"

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.stop_signal = signum
        self.stop_count += 1

    def _install_signals(self) -> None:
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _drain_wake(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def sleep(self, seconds: float) -> None:
        """Sleep, but wake at once on SIGTERM/SIGINT."""
        if self.stop_signal is None and seconds > 0:
            select.select([self.wake_r], [], [], seconds)
        self._drain_wake()

    def write_state(self, mode: str, **fields: object) -> None:
        interval = self.times.renew_every if mode == "holder" else self.times.poll
        _write_state(self.settings.env, mode=mode, redis=self.redis_ok, interval=round(interval, 3), **fields)

    def redis_failed(self, e: Exception, *, fatal: bool = True) -> str:
        """Classify a Redis error; permanent ones (wrong password, TLS) end a standby.

        A holder never exits on them: it keeps retrying, and the fence stops the script in time.
        """
        from spiffctl.probes import Status
        from spiffctl.probes import redis as probe

        self.redis_ok = False
        self.eviction_checked = False  # it may come back as another Redis
        outcome = probe.classify(e)
        detail = self.settings.redactor(outcome.detail)
        if fatal and outcome.status is Status.PERMANENT:
            raise UnavailableError(f"lease: {self.where()} refused us: {detail}; check {self.config.source}")
        return detail

    def check_eviction(self) -> None:
        if self.eviction_checked:
            return
        problem = lease.eviction_problem(self.conn)
        if problem:
            raise ConfigError(f"{self.config.source} ({self.config.display}): {problem}")
        self.eviction_checked = True

    # -- the runner ---------------------------------------------------------------------------

    def run(self) -> NoReturn:
        self._install_signals()
        while True:
            grant = self.standby()
            if grant is None:
                self.say(f"stopped by signal {self.stop_signal} while on standby")
                sys.exit(0)
            self.hold(grant)

    def standby(self) -> lease.Grant | None:
        """Poll until we acquire the lease (a :class:`Grant`) or a stop signal arrives (``None``)."""
        said_holder: tuple[str, int, int] | None = None
        said_down = False
        while self.stop_signal is None:
            holder_text = None
            try:
                self.check_eviction()
                result = self.lease.try_acquire()
            except ConfigError:
                raise
            except Exception as e:
                detail = self.redis_failed(e)
                if not said_down:
                    self.say(f"standby: {self.where()} is unreachable ({detail}); retrying every {self.times.poll:g} s")
                    said_down = True
            else:
                self.redis_ok = True
                said_down = False
                if isinstance(result, lease.Grant):
                    return result
                holder_text = result.describe()
                if said_holder != (result.host, result.pid, result.epoch):
                    said_holder = (result.host, result.pid, result.epoch)
                    self.say(
                        f"standby: the Background lease is held by {holder_text}; taking over when it "
                        f"ends (key {self.config.key}, ttl {self.config.ttl:g} s)"
                    )
            self.write_state("standby", holder=holder_text)
            self.sleep(self.times.poll)
        return None

    def hold(self, grant: lease.Grant) -> None:
        """Run the script while we hold the lease; returns (to standby) only if the lease is lost."""
        self.write_state("holder", epoch=grant.epoch)
        if grant.proven:
            self.say(f"acquired the lease, epoch {grant.epoch} ({grant.why}); starting {self.script.name}")
        else:
            wait = self.config.ttl * (1 + lease.DRIFT)
            self.say(
                f"acquired the lease, epoch {grant.epoch}, but {grant.why}: waiting {wait:.1f} s before starting "
                f"{self.script.name} so that a holder which lost its key has stopped"
            )
            if not self.keep_without_child(lease.now() + wait, grant.epoch):
                return
        self.supervise(grant.epoch)

    def renew(self, failing_since: float | None, last_error: str) -> tuple[float | None, str]:
        """One renewal attempt. Returns (when failures began or None, last error); raises LeaseLost."""
        try:
            self.lease.renew()
        except lease.LeaseLost:
            self.redis_ok = True
            raise
        except Exception as e:
            detail = self.redis_failed(e, fatal=False)
            if failing_since is None:
                left = self.lease.valid_until - lease.now()
                self.say(
                    f"cannot renew the lease at {self.where()}: {detail}; retrying, the Background "
                    f"will be stopped in {max(left, 0):.1f} s unless Redis answers"
                )
                return lease.now(), detail
            return failing_since, detail
        self.redis_ok = True
        if failing_since is not None:
            self.say(f"renewed the lease again after {lease.now() - failing_since:.1f} s of failures")
        return None, ""

    def keep_without_child(self, until: float, epoch: int) -> bool:
        """Hold the lease without a child until ``until``; False when lost or stopped."""
        failing_since: float | None = None
        error = ""
        next_renew = lease.now() + self.times.renew_every
        while lease.now() < until:
            if self.stop_signal is not None:
                self.release()
                self.say(f"stopped by signal {self.stop_signal} before the Background started")
                sys.exit(0)
            now = lease.now()
            if now >= self.lease.valid_until:
                down = now - (failing_since or now)
                self.say(f"lost the lease before starting: Redis unreachable for {down:.1f} s ({error})")
                return False
            if now >= next_renew:
                try:
                    failing_since, error = self.renew(failing_since, error)
                except lease.LeaseLost as e:
                    self.say(f"lost the lease before starting: {e}")
                    return False
                next_renew = lease.now() + (self.times.poll if failing_since else self.times.renew_every)
                self.write_state("holder", epoch=epoch)
            self.sleep(min(next_renew, until, self.lease.valid_until) - lease.now())
        return True

    def spawn(self, epoch: int) -> tuple[subprocess.Popen[bytes], int, int]:
        control_r, control_w = os.pipe()
        report_r, report_w = os.pipe()
        cmd = [
            sys.executable,
            "-I",
            watchdog.__file__,
            "--control",
            str(control_r),
            "--report",
            str(report_w),
            "--fence",
            repr(self.lease.valid_until),
            "--term-grace",
            repr(self.times.term_grace),
            "--cwd",
            str(self.settings.backend_dir),
            "--",
            str(self.script),
        ]
        env = {**self.env, EPOCH_VAR: str(epoch)}
        proc = subprocess.Popen(cmd, env=env, pass_fds=(control_r, report_w), start_new_session=True)
        os.close(control_r)
        os.close(report_w)
        return proc, control_w, report_r

    def supervise(self, epoch: int) -> None:
        if lease.now() >= self.lease.valid_until - self.times.term_grace:
            # Delayed (frozen, overloaded) since the last renewal: do not start a script now.
            self.say("the lease's local deadline is too close to start the Background; back to standby")
            return
        proc, control, report = self.spawn(epoch)
        buffer = b""
        child_pid: int | None = None
        result: tuple[int, str] | None = None
        failing_since: float | None = None
        error = ""
        lost: str | None = None
        stop_sent = 0
        belted = False
        next_renew = lease.now() + self.times.renew_every
        next_state = 0.0

        def send(line: str) -> None:
            try:
                os.write(control, (line + "\n").encode())
            except OSError:
                pass  # the watchdog is gone; the report pipe's end says so

        while result is None:
            now = lease.now()
            timeout = min(next_renew, self.lease.valid_until + BELT) - now
            ready, _, _ = select.select([report, self.wake_r], [], [], max(0.0, min(timeout, self.times.poll)))
            self._drain_wake()
            if report in ready:
                data = os.read(report, 4096)
                if not data:
                    result = self.watchdog_died(child_pid)
                    break
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                for raw in lines:
                    verb, _, rest = raw.decode(errors="replace").partition(" ")
                    if verb == "started":
                        child_pid = int(rest)
                        self.say(f"started {self.script.name} (pid {child_pid}, epoch {epoch}) under the lease")
                        next_state = 0.0
                    elif verb == "exited":
                        code, _, how = rest.partition(" ")
                        result = (int(code), how)
                    elif verb == "failed":
                        os.close(control)
                        proc.wait()
                        self.release()
                        errno_, _, text = rest.partition(" ")
                        code = NOT_FOUND if errno_ == "2" else NOT_EXECUTABLE
                        raise SpiffctlError(f"cannot execute {self.script}: {text} (check its #! line)", code)
                if result is not None:
                    break
            if self.stop_signal is not None and stop_sent < min(self.stop_count, 2):
                grace = STOP_GRACE if self.stop_count == 1 else 0.0
                if stop_sent == 0:
                    self.say(
                        f"signal {self.stop_signal}: stopping {self.script.name} (up to {grace:g} s), then releasing"
                    )
                send(f"stop {grace!r}")
                stop_sent = self.stop_count
            now = lease.now()
            if lost is None and now >= next_renew:
                try:
                    failing_since, error = self.renew(failing_since, error)
                except lease.LeaseLost as e:
                    lost = str(e)
                    self.say(f"lost the lease: {lost}; stopping {self.script.name}")
                    send(f"stop {self.times.term_grace!r}")
                else:
                    if failing_since is None:
                        send(f"fence {self.lease.valid_until!r}")
                now = lease.now()
                next_renew = now + (self.times.poll if failing_since else self.times.renew_every)
            if not belted and child_pid and now > self.lease.valid_until + BELT:
                # The watchdog should have killed the group by now; it is frozen or gone.
                belted = True
                self.say(f"the watchdog missed the deadline; killing {self.script.name}'s process group")
                _killpg(child_pid, signal.SIGKILL)
            if now >= next_state:
                self.write_state("holder", epoch=epoch, child_pid=child_pid)
                next_state = now + self.times.renew_every

        os.close(control)
        os.close(report)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        code, how = result
        if self.stop_signal is not None or (how == "own" and lost is None):
            released = self.release()
            verb = "stopped" if self.stop_signal is not None else "exited by itself"
            self.say(
                f"{self.script.name} {verb} with code {code}; "
                + ("lease released" if released else "the lease was no longer ours")
            )
            sys.exit(code)
        if lost is None:
            lost = (
                f"could not renew for {lease.now() - failing_since:.1f} s ({error})"
                if failing_since is not None
                else "the local deadline passed without a successful renewal"
            )
            self.release()
        self.say(f"{self.script.name} was fenced (code {code}) because the lease was lost: {lost}; back to standby")

    def watchdog_died(self, child_pid: int | None) -> tuple[int, str]:
        if child_pid:
            _killpg(child_pid, signal.SIGKILL)
            end = lease.now() + 2.0
            while lease.now() < end and _group_alive(child_pid):
                time.sleep(0.02)
        self.say("the watchdog died unexpectedly; killed the Background's process group")
        return 137, "fenced"

    def release(self) -> bool:
        try:
            return self.lease.release()
        except Exception as e:
            self.say(f"could not release the lease ({self.settings.redactor(str(e))}); it expires by itself")
            return False


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.waitpid(-1, os.WNOHANG)  # as PID 1 we inherit the orphans; reap them
    except ChildProcessError:
        pass
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
