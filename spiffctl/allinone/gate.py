"""In the all-in-one, a role's script starts only once the roles it comes after answer.

On one small box the API's start (an upgrade, cache refreshes, gunicorn booting the app) is what
operators wait for, and the Background's and the worker's own app starts compete with it for the
CPU: measured on the real backend, the API came up 1.7 times slower beside them. The role table
says which roles come after which (``Role.after``); the all-in-one's plan passes that on in
:data:`START_AFTER`, and each waiting role polls the others' health checks (the same ones
``spiffctl healthcheck`` runs), so the API boots alone and the others follow.

Only the all-in-one sets :data:`~spiffctl.roles.START_AFTER`: split replicas never wait for each other (their
schema wait is what orders them).
"""

from __future__ import annotations

from collections.abc import Callable

from spiffctl import state
from spiffctl.config.settings import Settings
from spiffctl.health import one_role
from spiffctl.roles import ROLES, START_AFTER
from spiffctl.util import poll
from spiffctl.util.errors import UnavailableError
from spiffctl.wait import Say, waiting_event


def start_after(
    settings: Settings, timeout: float, *, say: Say, waiting: Callable[[str], None] = lambda _: None
) -> None:
    """Return once every role named in :data:`START_AFTER` is healthy; raise after ``timeout``."""
    names = [n for n in (settings.env.get(START_AFTER) or "").split(",") if n in ROLES]
    clock = poll.Poll(timeout)
    for name in names:
        waiting(f"the {name} role to answer")
        _after(name, settings, clock, say=say)


def _after(name: str, settings: Settings, clock: poll.Poll, *, say: Say) -> None:
    # The other role's state lives in its own run dir, a sibling of ours (allinone.supervisor).
    env = {**settings.env, state.RUN_DIR_VAR: str(state.run_dir(create=False).parent / name)}

    def attempt() -> poll.Pending[str] | None:
        healthy, line = one_role(ROLES[name], env, settings)
        return None if healthy else poll.Pending(line)

    def progress(line: str, waited: float) -> None:
        text = f"starting after the {name} role, which does not answer yet ({line})"
        say(waiting_event(text, f"the {name} role", waited, line))

    def timed_out(line: str, waited: float) -> UnavailableError:
        return UnavailableError(f"the {name} role did not answer within {clock.timeout:g} s ({line})")

    poll.until(attempt, clock, progress=progress, timed_out=timed_out)
