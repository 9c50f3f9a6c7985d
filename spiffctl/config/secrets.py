"""``NAME_FILE=path`` secrets, the way Docker and Kubernetes users expect them.

For every ``SPIFFWORKFLOW_BACKEND_*`` or ``FLASK_*`` variable, ``NAME_FILE`` names a file whose
content (one trailing newline stripped) becomes ``NAME`` in the child's environment. The backend
has code for this but registers no such variable, so without spiffctl nothing happens.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Mapping

from spiffctl.util.errors import ConfigProblems

_FILE_VAR = re.compile(r"^(SPIFFWORKFLOW_BACKEND_|FLASK_)[A-Z0-9_]+_FILE$")
# Real backend variables that merely end in _FILE; they are values, not paths to secrets.
NOT_SECRET_FILES = frozenset({"SPIFFWORKFLOW_BACKEND_LOG_TO_FILE"})


# A secret is a password, a key or a URL; anything bigger is the wrong file.
MAX_SIZE = 64 * 1024


def resolve_file_secrets(env: Mapping[str, str]) -> tuple[dict[str, str], set[str]]:
    """Return the environment with every ``NAME_FILE`` replaced by ``NAME``, and the secret values.

    Raises :class:`ConfigProblems` listing every variable that is set twice or unreadable; the
    messages name the variable and the path, never the content.
    """
    out, secrets, problems = _resolve(env)
    if problems:
        raise ConfigProblems(problems)
    return out, secrets


def readable_file_secrets(env: Mapping[str, str]) -> tuple[dict[str, str], set[str]]:
    """:func:`resolve_file_secrets` for scrubbing: what could be read, whatever could not."""
    out, secrets, _ = _resolve(env)
    return out, secrets


def _resolve(env: Mapping[str, str]) -> tuple[dict[str, str], set[str], list[str]]:
    out = dict(env)
    secrets: set[str] = set()
    problems: list[str] = []
    for file_var in sorted(env):
        if not _FILE_VAR.match(file_var) or file_var in NOT_SECRET_FILES:
            continue
        path = env[file_var]
        if not path:
            # The backend treats empty as unset; so do we.
            del out[file_var]
            continue
        name = file_var.removesuffix("_FILE")
        if env.get(name):
            problems.append(f"{name} and {file_var} are both set; unset one of them")
            continue
        try:
            value = read_secret(path)
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
            problems.append(f"{file_var}: cannot read {path} ({reason}); mount the secret there or fix the path")
            continue
        value = value.removesuffix("\n")
        out[name] = value
        del out[file_var]
        if value:
            secrets.add(value)
    return out, secrets, problems


def read_secret(path: str) -> str:
    """The content of the regular file ``path``: a FIFO, socket or device is refused rather than
    read, since opening or reading it may block forever (``run`` and ``doctor`` must not hang)."""
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        data = b""
        while chunk := os.read(fd, MAX_SIZE + 1 - len(data)):
            data += chunk
            if len(data) > MAX_SIZE:
                raise OSError(errno.EFBIG, f"larger than {MAX_SIZE // 1024} KiB")
    finally:
        os.close(fd)
    # As a text-mode read would: the value is compared and passed on with \n line ends.
    return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
