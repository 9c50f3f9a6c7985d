"""``spiffctl run --role ROLE``: check configuration, wait for dependencies, exec the role's script.

In order: the configuration (78), the script (127/126), the dependencies (69 when they stay
down), then the schema: an API replica with ``SPIFFWORKFLOW_BACKEND_UPGRADE_DB=true`` applies the
upgrade once across replicas under a database lock (:mod:`spiffctl.schema.upgrade`), every other role
waits until the schema is at head (:mod:`spiffctl.schema.revision`); in the all-in-one the Background and
the worker also wait for the API to answer (:mod:`spiffctl.allinone.gate`). ``--no-wait`` skips
all of it and leaves the schema to the script.

For a single role the script replaces spiffctl (same PID, so the orchestrator's signals reach the
backend directly). The Background role is the exception when the lease is on: spiffctl stays as
the script's parent to renew the lease and fence the script (see :mod:`spiffctl.lease.guard`), in
a lean interpreter it execs once the checks are done (:mod:`spiffctl.lease.resident`).
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

from spiffctl import log, state
from spiffctl.config.settings import load
from spiffctl.launch import child_env, exec_script, prepare, say, script_path
from spiffctl.roles import START_AFTER, get_role
from spiffctl.schema import revision, upgrade
from spiffctl.stopping import closing_line
from spiffctl.wait import wait_for


def run(role_name: str, *, backend_dir: Path | None, wait_timeout: float, wait: bool) -> NoReturn:
    role = get_role(role_name, allow_all=True)
    log.set_role(role_name)
    settings = load(backend_dir=backend_dir)
    # An unsafe run folder is refused before anything is written to it (78), for every role.
    state.run_dir()
    if role is None:
        from spiffctl.allinone import supervisor

        with closing_line("no role was"):
            supervisor.run_all(settings, wait_timeout=wait_timeout, wait=wait, say=say)
    assert role is not None
    prepare(settings, role, say=say)
    script = script_path(settings, role)
    env = child_env(settings, role, say=say)
    lease = None
    start = None
    if role.singleton:
        from spiffctl.lease import guard
        from spiffctl.lease.start import start_mode

        lease = guard.lease_for_role(settings, role)
        start = start_mode(settings.env, settings.backend_dir)
    # Read before any waiting: a bad value is a configuration error now, not after a minute.
    schema_timeout = revision.timeout(settings.env)
    if wait:
        with closing_line(f"the {role.name} script was"):
            needed = [e for need in role.needs if (e := settings.endpoint(need)) is not None]
            state.set_waiting(f"its dependencies ({', '.join(e.need.value for e in needed if e.need)})")
            wait_for(needed, wait_timeout, say=say, redactor=settings.redactor)
            upgrade.prepare(settings, role, env, schema_timeout, say=say, waiting=state.set_waiting)
            if settings.env.get(START_AFTER):
                # Only the all-in-one sets it: a split role never loads the all-in-one package.
                from spiffctl.allinone import gate

                gate.start_after(settings, schema_timeout, say=say, waiting=state.set_waiting)
        state.done_waiting()
    state.remember_role(role.name)
    if lease is not None and lease.enabled:
        from spiffctl.lease import resident

        resident.hand_over(settings, role)
    if lease is not None:
        guard.run_singleton(settings, lease, role, script, env, say=say, start=start)
        if start is not None and start.warm:
            # No lease, so nobody to wait for: the scheduler after one app start, not the script's two minutes.
            from spiffctl.lease.start import WARM_CHILD

            state.remember_process(role.name, settings.backend_dir)
            # The child cannot import spiffctl: it is told the format its two possible lines take.
            fmt = "json" if log.use_json() else "text"
            exec_script(start.python, settings.backend_dir, env, (str(WARM_CHILD), "--now", str(script), fmt))
    # The exec keeps this pid: healthcheck --role worker watches it, and pings from this root's venv.
    state.remember_process(role.name, settings.backend_dir)
    exec_script(script, settings.backend_dir, env)
