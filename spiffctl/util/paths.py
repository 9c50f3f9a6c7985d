"""What the kernel will refuse in a path, said before anything tries it.

A file name over ``NAME_MAX`` or a path over ``PATH_MAX`` fails every system call with
``ENAMETOOLONG``, deep inside whatever touches it first (a probe thread, ``Path.resolve``): the
operator's value is checked here instead, so the message names the variable.
"""

from __future__ import annotations

import os

NAME_MAX = 255  # bytes in one path component (Linux, every common filesystem)
PATH_MAX = 4095  # bytes in a whole path, without the NUL


def too_long(path: str) -> str | None:
    """Why ``path`` cannot be used as a file name, or ``None``."""
    raw = os.fsencode(path)
    if len(raw) > PATH_MAX:
        return f"its path is {len(raw)} bytes long, over the {PATH_MAX} a path may have"
    longest = max((len(part) for part in raw.split(b"/")), default=0)
    if longest > NAME_MAX:
        return f"a folder or file name in its path is {longest} bytes long, over the {NAME_MAX} a name may have"
    return None
