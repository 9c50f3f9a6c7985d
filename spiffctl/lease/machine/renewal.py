"""Renewing the lease, the same while waiting and while supervising: its answers, as a new lease."""

from __future__ import annotations

from dataclasses import replace

from spiffctl.lease.machine.common import Common, Lease, Setup
from spiffctl.lease.machine.io import Action, Say


def renewed(
    setup: Setup, common: Common, lease: Lease, valid_until: float, now: float, out: list[Action]
) -> tuple[Common, Lease]:
    if lease.failing_since is not None:
        late = round(now - lease.failing_since, 1)
        text = f"renewed the lease again after {now - lease.failing_since:.1f} s of failures"
        out.append(Say(text, "renewed-late", (("epoch", lease.epoch), ("late", late))))
    lease = replace(lease, failing_since=None, valid_until=valid_until, next_renew=now + setup.t.renew_every)
    return replace(common, store_ok=True), lease


def failed(
    setup: Setup, common: Common, lease: Lease, detail: str, then: str, now: float, out: list[Action]
) -> tuple[Common, Lease]:
    """Renewal got no answer, or a refusal: retry every poll; the fence acts at the deadline.

    ``then`` says what happens at the deadline, in the one line said when the failures begin.
    """
    common = replace(common, store_ok=False, checked=False)
    lease = replace(lease, last_failure=detail, next_renew=now + setup.t.poll)
    if lease.failing_since is None:
        lease = replace(lease, failing_since=now)
        left = max(lease.valid_until - now, 0.0)
        out.append(
            Say(
                f"cannot renew the lease at {setup.names.store}: {detail}; retrying, {then} in {left:.1f} s "
                f"unless {setup.names.store_kind} answers",
                "renew-failing",
                (("epoch", lease.epoch), ("error", detail), ("left", round(left, 1))),
            )
        )
    return common, lease
