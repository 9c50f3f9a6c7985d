"""Doctor's checks, one small function each; :data:`CHECKS` is the list doctor runs, in report order.

Adding a check is one function returning :class:`~spiffctl.doctor.engine.Result` (or several) plus one
line here.
"""

from __future__ import annotations

from collections.abc import Callable

from spiffctl.doctor.checks import backend, celery, config, connector, database, lease, start
from spiffctl.doctor.engine import Context, Spec
from spiffctl.roles import ALL, Need
from spiffctl.wait import describe


def needs(need: Need) -> Callable[[Context], bool]:
    def wanted(ctx: Context) -> bool:
        return need in ctx.needs

    return wanted


def celery_role(ctx: Context) -> bool:
    """Broker checks: for the roles that need it, and under ``all`` also to say Celery is off."""
    return Need.BROKER in ctx.needs or ctx.role == ALL


def singleton_role(ctx: Context) -> bool:
    return any(r.singleton for r in ctx.roles)


def at(need: Need) -> Callable[[Context], str]:
    def where(ctx: Context) -> str:
        endpoint = ctx.settings.endpoint(need)
        return describe(endpoint) if endpoint else ""

    return where


CHECKS: tuple[Spec, ...] = (
    Spec("configuration", config.check),
    Spec("backend scripts", backend.scripts),
    Spec("process models", backend.process_models),
    Spec("database", database.check, wanted=needs(Need.DATABASE), where=at(Need.DATABASE)),
    Spec("broker", celery.broker, wanted=celery_role, where=at(Need.BROKER)),
    Spec("result backend", celery.result_backend, wanted=celery_role, where=at(Need.RESULT_BACKEND)),
    Spec("background lease", lease.check, wanted=singleton_role, where=lease.where),
    Spec("background start", start.check, wanted=singleton_role),
    Spec("connector proxy", connector.check, on_timeout="warn", where=connector.liveness_url),
)
