"""A Background replica (``run --role background --no-wait``) whose lease store has a bug.

    python tests/support/faulty_background.py BACKEND_DIR

Everything is real (settings, the guard, its watchdog, the script, Redis) except that the store
raises a ``TypeError`` naming the lease URL (password included, as careless code would) on the
renewal number ``FAULT_AT_RENEWAL`` or, with ``FAULT_AT_ACQUIRE=1``, on its first acquisition.
The guard must fence the script and leave with exit 70 and one redacted line.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from spiffctl.config.settings import load
from spiffctl.launch import child_env, prepare, say, script_path
from spiffctl.lease.guard import Guard, lease_for_role
from spiffctl.lease.stores import Grant, Holder, LeaseLost
from spiffctl.lease.stores.redis import RedisStore
from spiffctl.roles import get_role
from spiffctl.util.errors import SpiffctlError


class FaultyStore(RedisStore):
    renewals = 0

    def fault(self) -> TypeError:
        return TypeError(f"unsupported operand type(s) for +: 'NoneType' and 'str' ({os.environ['SPIFFCTL_LOCK_URL']})")

    def try_acquire(self) -> Grant | Holder:
        if os.environ.get("FAULT_AT_ACQUIRE"):
            raise self.fault()
        return super().try_acquire()

    def renew(self) -> float | LeaseLost:
        self.renewals += 1
        if self.renewals >= int(os.environ.get("FAULT_AT_RENEWAL", "0") or 10**9):
            raise self.fault()
        return super().renew()


def main() -> int:
    settings = load(backend_dir=Path(sys.argv[1]))
    role = get_role("background")
    assert role is not None
    prepare(settings, role, say=say)
    config = lease_for_role(settings, role)
    assert config.url is not None
    store = FaultyStore.from_url(config.url, config.key, config.ttl, timeout=0.3)
    guard = Guard(
        settings, config, script_path(settings, role), child_env(settings, role, say=say), say=say, store=store
    )
    try:
        guard.run()
    except SpiffctlError as e:  # as spiffctl.cli.main prints it
        print(f"spiffctl: {e.message}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
