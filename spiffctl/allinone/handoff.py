"""The secrets ``run --role all`` resolved, handed to the PID-1 program that hosts the log prefixer.

spiffctl reads the ``*_FILE`` secrets, then execs :mod:`spiffctl.allinone.pid1`; the scrubber
there must know the same values. They travel in an anonymous memory file (``memfd_create``)
inherited across the exec, its descriptor number in :data:`VAR`: never on disk, never on a
command line, never in an environment a role inherits (pid1 reads and closes the descriptor and
drops the variable before supervisord starts a role).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, MutableMapping

VAR = "SPIFFCTL_SECRETS_FD"
NAME = "spiffctl-secrets"
MAX_SIZE = 16 * 1024 * 1024


def give(secrets: Iterable[str], environ: MutableMapping[str, str]) -> None:
    """Before the exec: the secrets in a memory file the exec'd program inherits."""
    fd = os.memfd_create(NAME)
    os.write(fd, json.dumps(sorted(secrets)).encode())
    os.lseek(fd, 0, os.SEEK_SET)
    os.set_inheritable(fd, True)
    environ[VAR] = str(fd)


def take(environ: MutableMapping[str, str]) -> set[str]:
    """In pid1: the secrets handed over (none when there are none), the descriptor closed and
    :data:`VAR` dropped. A descriptor that is not our memory file (an operator's stray variable
    naming stdin, say) is left alone."""
    value = environ.pop(VAR, "")
    if not value.isdigit():
        return set()
    fd = int(value)
    try:
        if not os.readlink(f"/proc/self/fd/{fd}").startswith(f"/memfd:{NAME}"):
            return set()
        data = os.read(fd, MAX_SIZE)
        os.close(fd)
        found = json.loads(data)
    except (OSError, ValueError):
        return set()
    return {s for s in found if isinstance(s, str)} if isinstance(found, list) else set()
