"""What healthy means for each role; used by ``spiffctl healthcheck`` and the all-in-one's start gate.

* api: ``GET http://127.0.0.1:<port><status_path>`` answers ``{"ok": true}``.
* background: ``<run dir>/background.json``, kept fresh by the Background runner, says spiffctl
  is alive and either runs the scheduler (``holder`` or ``unleased``, with a live child) or is a
  ``standby`` that reaches the lease store (Redis or the database). The runner rewrites it on every
  lease renewal (every TTL/3), so the file is stale after three missed renewals, i.e. one TTL; with
  a floor of 10 s so that a short TTL on a busy machine does not flap. Stale state is unhealthy: the runner is stuck.
* worker: the process ``run --role worker`` became (recorded in the run dir) is alive and the
  broker answers.

Each check returns a :data:`Verdict` and may block on a probe for :data:`PROBE_TIMEOUT`; the caller
bounds the whole (``healthcheck`` with a deadline thread).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from spiffctl import procfs, state
from spiffctl.roles import ALL, Health, Need, Role, roles_for
from spiffctl.settings import PORT, Settings, load

PROBE_TIMEOUT = 1.2
STALE_FLOOR = 10.0
# The runner rewrites its state every `interval` seconds (TTL/3 while holding, the poll while
# standby); three missed rewrites mean it is stuck. The floor keeps short test TTLs from flapping.
MISSED_REWRITES = 3
DEFAULT_INTERVAL = 5.0

Verdict = tuple[bool, str]


def one_role(role: Role, env: Mapping[str, str], settings: Settings) -> Verdict:
    # Dispatch on the role table's Health, so a new role reuses a probe with one table edit.
    checks: dict[Health, Callable[[], Verdict]] = {
        Health.HTTP_STATUS: lambda: api(settings),
        Health.LEASE_STATE: lambda: background(env),
        Health.WORKER: lambda: worker(settings, env),
    }
    return checks[role.health]()


def every_role(env: Mapping[str, str]) -> Verdict:
    """``run --role all``: healthy when every role it runs is, each read from its own run dir."""
    settings = load(env)
    base = state.run_dir(env, create=False)
    roles = roles_for(ALL, celery_enabled=settings.celery_enabled)
    for role in roles:
        healthy, line = one_role(role, {**env, state.RUN_DIR_VAR: str(state.role_run_dir(base, role.name))}, settings)
        if not healthy:
            return False, f"{role.name}: {line}"
    return True, f"{', '.join(r.name for r in roles)} healthy"


def api(settings: Settings) -> Verdict:
    from spiffctl.probes import http

    if settings.port is None:
        # The same words `run` exits 78 with: the API cannot be listening on a port that is not one.
        return False, next(str(p) for p in settings.errors if p.variable == PORT)
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
    if not procfs.alive(pid):
        return False, f"spiffctl (pid {pid}) is not running"
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
        if procfs.alive(child):
            return True, f"{what}; scheduler pid {child} alive"
        return False, f"{what} but the scheduler (pid {child}) is not running"
    if mode == "standby":
        if data.get("store") is True:
            return True, "standby; the lease store answers"
        return False, "standby but the lease store does not answer, so it could not take over"
    return False, f"runner state has unknown mode {mode!r}"


def worker(settings: Settings, env: Mapping[str, str]) -> Verdict:
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
    return True, f"pid {pid} alive; {describe(broker)} answers"


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
