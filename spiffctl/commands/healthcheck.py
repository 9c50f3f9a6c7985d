"""``spiffctl healthcheck``: one line, exit 0 healthy / 1 unhealthy, within 2 s, for Docker and Kubernetes.

What each role's check looks at: :mod:`spiffctl.health`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from spiffctl import state
from spiffctl.config.settings import load
from spiffctl.health import State, every_role, judge, own_state
from spiffctl.roles import ALL, ROLE_CHOICES, ROLES
from spiffctl.util import bounded, procfs
from spiffctl.util.errors import CHECK_FAILED, OK, SpiffctlError
from spiffctl.util.redact import quote

# Docker's and Kubernetes' probes expect an answer in about 2 s; measured from exec, so the
# interpreter's start-up counts.
BOUND = 1.8


def run(role_name: str | None) -> int:
    # An unsafe run folder is a configuration error (78) here as for every command, not "unhealthy".
    state.run_dir(create=False)
    role = role_name or state.remembered_role()
    if not role:
        raise SpiffctlError(
            "healthcheck: no role given and none remembered from `spiffctl run`; pass --role api|background|worker",
            CHECK_FAILED,
        )
    if role not in ROLE_CHOICES:
        # Exit 1, not 2: orchestrators only know healthy and unhealthy.
        raise SpiffctlError(
            f"healthcheck: role {quote(role)} has no health check; pass --role {'|'.join(ROLE_CHOICES)}", CHECK_FAILED
        )
    env = dict(os.environ)
    # Measured from exec: the orchestrator's clock includes interpreter start-up.
    limit = max(0.2, BOUND - (time.monotonic() - procfs.exec_time()))
    # The checks get the deadline too: the worker's ping shortens its wait to answer in time.
    deadline = time.monotonic() + limit
    # Inside an all-in-one each role keeps its own state: `--role worker` reads the worker's.
    check = (
        (lambda: every_role(env, deadline))
        if role == ALL
        else (lambda: judge(ROLES[role], own_state(env, role), load(env), deadline))
    )
    verdict, line = within(check, limit, role)
    print(f"{verdict}: {role}: {line}", flush=True)
    return OK if verdict == "healthy" else CHECK_FAILED


def within(fn: Callable[[], tuple[State, str]], limit: float, role: str) -> tuple[State, str]:
    """Run ``fn`` in a daemon thread; a stuck driver makes the answer "unhealthy", never a hang."""

    def task() -> tuple[State, str]:
        try:
            return fn()
        except SpiffctlError as e:
            return "unhealthy", e.message.splitlines()[0]
        except Exception as e:
            return "unhealthy", f"internal error: {type(e).__name__}"

    [verdict], _ = bounded.race([task], time.monotonic() + limit, name="healthcheck")
    if verdict is not None:
        return verdict
    print(f"unhealthy: {role}: no answer within {BOUND:g} s", flush=True)
    bounded.leave(CHECK_FAILED)
