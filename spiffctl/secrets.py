"""``NAME_FILE=path`` secrets, the way Docker and Kubernetes users expect them.

For every ``SPIFFWORKFLOW_BACKEND_*`` or ``FLASK_*`` variable, ``NAME_FILE`` names a file whose
content (one trailing newline stripped) becomes ``NAME`` in the child's environment. The backend
has code for this but registers no such variable, so without spiffctl nothing happens.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from spiffctl.errors import ConfigProblems

_FILE_VAR = re.compile(r"^(SPIFFWORKFLOW_BACKEND_|FLASK_)[A-Z0-9_]+_FILE$")
# Real backend variables that merely end in _FILE; they are values, not paths to secrets.
NOT_SECRET_FILES = frozenset({"SPIFFWORKFLOW_BACKEND_LOG_TO_FILE"})


def resolve_file_secrets(env: Mapping[str, str]) -> tuple[dict[str, str], set[str]]:
    """Return the environment with every ``NAME_FILE`` replaced by ``NAME``, and the secret values.

    Raises :class:`ConfigProblems` listing every variable that is set twice or unreadable; the
    messages name the variable and the path, never the content.
    """
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
            with open(path, encoding="utf-8") as f:
                value = f.read()
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
            problems.append(f"{file_var}: cannot read {path} ({reason}); mount the secret there or fix the path")
            continue
        value = value.removesuffix("\n")
        out[name] = value
        del out[file_var]
        if value:
            secrets.add(value)
    if problems:
        raise ConfigProblems(problems)
    return out, secrets
