"""What healthy means for each role; used by ``spiffctl healthcheck`` and the all-in-one's start gate.

* api: ``GET http://127.0.0.1:<port><status_path>`` answers ``{"ok": true}``.
* background: ``<run dir>/background.json``, kept fresh by the Background runner, says spiffctl
  is alive and either runs the scheduler (``holder`` or ``unleased``, with a live child) or is a
  ``standby`` that reaches the lease store (Redis or the database). The runner rewrites it on every
  lease renewal (every TTL/3), so the file is stale after three missed renewals, i.e. one TTL; with
  a floor of 10 s so that a short TTL on a busy machine does not flap. Stale state is unhealthy:
  the runner is stuck.
* worker: the process ``run --role worker`` became (recorded in the run dir) is alive, the broker
  answers, and the worker itself answers Celery's broadcast ``ping`` (:mod:`spiffctl.celeryping`)
  within :data:`~spiffctl.celeryping.PING_TIMEOUT` (0.8 s). A live process proves little: a worker
  whose processes are stopped (SIGSTOP) or wedged keeps its pid and its broker connection, and
  only the ping tells it apart. The checks run cheapest first: /proc, one broker connection,
  then the ping, which starts the backend venv's python, imports Celery and connects, then
  waits for the answer: at once from a healthy worker, the whole 0.8 s from a frozen one, which
  is why the wait is shortened when the caller's ``deadline`` is nearer. ``bench/healthcheck.py``
  measures both: docs/figures.md#h1.

  When the ping cannot run at all (no ``<backend root>/.venv/bin/python``, or no Celery in it),
  the worker is *unhealthy*, with the path and the fix in the line. Falling back to the old
  process-and-broker check would report a frozen worker healthy again, silently, on exactly the
  installs that are set up differently from the image; and the worker itself runs Celery from
  that venv, so a venv without Celery means spiffctl is looking at the wrong backend root. The
  exception is an SQS broker: Celery has no remote control over SQS, so nothing can ping the
  worker; there the old check stands and the line says so.

Each check returns a :data:`Verdict` and may block on a probe for :data:`PROBE_TIMEOUT`; the ping
child ends by itself within ``PING_TIMEOUT + START_ALLOWANCE`` (1.4 s). The caller bounds the
whole (``healthcheck`` with a deadline thread, 1.8 s from exec) and passes that deadline on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

from spiffctl import celeryping, state
from spiffctl.config.settings import PORT, Settings, load
from spiffctl.roles import ALL, Health, Need, Role, roles_for
from spiffctl.util import procfs

PROBE_TIMEOUT = 1.2
STALE_FLOOR = 10.0
# The runner rewrites its state every `interval` seconds (TTL/3 while holding, the poll while
# standby); three missed rewrites mean it is stuck. The floor keeps short test TTLs from flapping.
MISSED_REWRITES = 3
DEFAULT_INTERVAL = 5.0

Verdict = tuple[bool, str]
# "starting": a deliberate wait the role declared (dependencies, the schema, the API, the lease's
# safe start). healthcheck exits 1 for it, as for unhealthy: Docker does not count failures during
# start_period and a Kubernetes startup probe retries, while exit 0 would let `depends_on:
# service_healthy` start what depends on a role that does not run yet.
State = Literal["healthy", "starting", "unhealthy"]


def judge(role: Role, env: Mapping[str, str], settings: Settings, deadline: float | None = None) -> tuple[State, str]:
    """The role's state as ``status`` sees it too: its declared wait first, then its own check."""
    record = state.waiting(env)
    if record is not None:
        return "starting", state.waiting_line(record, time.time())
    healthy, line = one_role(role, env, settings, deadline)
    return ("healthy" if healthy else "unhealthy"), line


def one_role(role: Role, env: Mapping[str, str], settings: Settings, deadline: float | None = None) -> Verdict:
    """``deadline`` (``time.monotonic()``): when the caller gives up; the worker's ping fits inside."""
    # Dispatch on the role table's Health, so a new role reuses a probe with one table edit.
    checks: dict[Health, Callable[[], Verdict]] = {
        Health.HTTP_STATUS: lambda: api(settings, env),
        Health.LEASE_STATE: lambda: background(env),
        Health.WORKER: lambda: worker(settings, env, deadline),
    }
    return checks[role.health]()


def every_role(env: Mapping[str, str], deadline: float | None = None) -> tuple[State, str]:
    """``run --role all``: healthy when every role it runs is, each read from its own run dir."""
    settings = load(env)
    roles = roles_for(ALL, celery_enabled=settings.celery_enabled)
    verdicts = [(role, *judge(role, own_state(env, role.name), settings, deadline)) for role in roles]
    for wanted in ("unhealthy", "starting"):
        found = [f"{role.name}: {line}" for role, verdict, line in verdicts if verdict == wanted]
        if found:
            return ("unhealthy" if wanted == "unhealthy" else "starting"), "; ".join(found)
    return "healthy", f"{', '.join(r.name for r in roles)} healthy"


def own_state(env: Mapping[str, str], role: str) -> dict[str, str]:
    """``env`` pointing at ``role``'s own run dir inside an all-in-one (its role file says ``all``)."""
    if state.remembered_role(env) != ALL:
        return dict(env)
    base = state.run_dir(env, create=False)
    return {**env, state.RUN_DIR_VAR: str(state.role_run_dir(base, role))}


def api(settings: Settings, env: Mapping[str, str]) -> Verdict:
    from spiffctl.probes import http

    if settings.port is None:
        # The same words `run` exits 78 with: the API cannot be listening on a port that is not one.
        return False, next(str(p) for p in settings.errors if p.variable == PORT)
    record = state.remembered_process("api", env)
    if record is not None:
        # Started by `run`: only its own process tree may answer for it.
        pid = record.get("pid")
        if not procfs.alive(pid, record.get("start")):
            return False, f"the api process (pid {pid}) is not running"
        assert isinstance(pid, int)
        from spiffctl import listeners

        other = listeners.stranger(settings.port, pid)
        if other:
            return False, other
    url = f"http://127.0.0.1:{settings.port}{settings.status_path}"
    try:
        status, body = http.get(url, PROBE_TIMEOUT)
    except Exception as e:
        from spiffctl.probes import classify_exception

        reason = getattr(e, "reason", e)
        detail = classify_exception(reason).detail if isinstance(reason, BaseException) else str(reason)
        return False, settings.redactor(f"{url}: {detail}")
    text = body.decode("utf-8", "replace")
    if 200 <= status < 300 and http.status_ok(text):
        return True, f"{url} answered ok"
    from spiffctl.probes import one_line

    return False, settings.redactor(f"{url} answered HTTP {status}: {one_line(text, 120)}")


def background(env: Mapping[str, str]) -> Verdict:
    path = state.run_dir(env, create=False) / state.BACKGROUND_FILE
    data = state.read_json(path)
    if data is None:
        return False, f"no runner state at {path}; is `spiffctl run --role background` running in this container?"
    pid = data.get("pid")
    if not procfs.alive(pid, data.get("start")):
        return False, f"spiffctl (pid {pid}) is not running: {path} was left by an earlier process"
    mode = data.get("mode")
    interval = _number(data.get("interval")) or DEFAULT_INTERVAL
    updated = _number(data.get("updated"))
    limit = max(MISSED_REWRITES * interval, STALE_FLOOR)
    age = time.time() - updated if updated is not None else float("inf")
    # Unleased (SPIFFCTL_LOCK=off): the script was exec'd in place with spiffctl's pid, so the file
    # is written once and the pid check above is the whole liveness story.
    if mode != "unleased" and age > limit:
        shown = "never" if updated is None else f"{age:.0f} s ago"
        return False, f"runner state last updated {shown} (limit {limit:g} s): spiffctl (pid {pid}) is stuck"
    child = data.get("child_pid")
    if mode in ("holder", "unleased"):
        what = "holds the lease" if mode == "holder" else "runs without a lease"
        if child is None:
            return False, f"{what} but has not started the scheduler"
        if procfs.alive(child):
            return True, f"{what}; scheduler pid {child} alive"
        return False, f"{what} but the scheduler (pid {child}) is not running"
    if mode == "standby":
        standby = "standby" + warmth(data)
        if data.get("store") is True:
            return True, f"{standby}; the lease store answers"
        return False, f"{standby} but the lease store does not answer, so it could not take over"
    return False, f"runner state has unknown mode {mode!r}"


def warmth(data: Mapping[str, object]) -> str:
    """For a warm standby: ", warm since <UTC time> (<age>)" or ", loading the app for <age>"; else nothing."""
    since = _number(data.get("warm_since"))
    warm = data.get("warm")
    if since is None or warm not in ("warm", "loading"):
        return ""
    age = f"{max(0.0, time.time() - since):.0f} s"
    if warm == "loading":
        return f", loading the app for {age}"
    return f", warm since {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(since))} ({age})"


def worker(settings: Settings, env: Mapping[str, str], deadline: float | None = None) -> Verdict:
    record = state.remembered_process("worker", env)
    if record is None:
        return False, "no worker process recorded; was it started with `spiffctl run --role worker`?"
    pid = record.get("pid")
    if not procfs.alive(pid, record.get("start")):
        return False, f"worker process (pid {pid}) is not running"
    broker = settings.endpoint(Need.BROKER)
    if broker is None:
        return False, "no usable broker configured (run `spiffctl doctor --role worker`)"
    from spiffctl import probes
    from spiffctl.wait import describe

    outcome = probes.check(broker, PROBE_TIMEOUT)
    if not outcome.ok:
        return False, settings.redactor(f"pid {pid} alive but {describe(broker)}: {outcome.detail}")
    if broker.kind == "sqs":
        return True, f"pid {pid} alive; {describe(broker)} answers (Celery cannot ping a worker over SQS)"
    # The root the worker was started from (older records lack it): its venv runs the worker.
    python = celeryping.venv_python(Path(record.get("backend_dir") or settings.backend_dir))
    return _pinged(celeryping.ping(python, broker.url, settings.env, deadline), pid, python, settings)


def _pinged(reply: celeryping.Reply, pid: object, python: Path, settings: Settings) -> Verdict:
    node = reply.node or "the worker"
    lines: dict[str, Verdict] = {
        "pong": (True, f"pid {pid} alive; {node} answered the ping"),
        "silent": (
            False,
            f"{node} did not answer the ping within {reply.waited:.2g} s: frozen or busy "
            f"(pid {pid} is alive and the broker answers)",
        ),
        "odd": (False, f"{node} answered the ping with {reply.detail} instead of pong"),
        "broker": (False, f"pid {pid} alive but the ping could not use the broker: {reply.detail}"),
        "no-celery": (
            False,
            f"cannot ping {node}: {python} cannot import Celery ({reply.detail}); the worker runs Celery from "
            "that venv: install the backend's dependencies there (`uv sync` in the backend root), or start the "
            "worker with --backend-dir pointing at the backend root",
        ),
        "no-python": (
            False,
            f"cannot ping {node}: {reply.detail} is missing or not executable; the backend's venv must be at "
            "<backend root>/.venv as in its image: run `uv sync` in the backend root, or start the worker with "
            "--backend-dir pointing at the backend root",
        ),
        "failed": (False, f"cannot ping {node}: {reply.detail}"),
    }
    healthy, line = lines[reply.kind]
    # Driver text (kombu's errors) may quote the broker's address, never trusted to be clean.
    return healthy, settings.redactor(line)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
