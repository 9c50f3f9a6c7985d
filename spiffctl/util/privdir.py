"""A private folder that cannot be turned against the host, as OpenSSH's StrictModes and tmux's socket folder.

The folder is trusted only when it is a real folder (not a symbolic link), owned by the user
spiffctl runs as and writable by nobody else; otherwise another local user could plant links or
swap files in it that spiffctl (often root) would then write through or execute. The only mode
spiffctl ever sets is 0700 on a folder it has just created itself: an existing folder is checked,
never chmod'ed (``SPIFFCTL_RUN_DIR=/tmp`` once made /tmp 0700 and took PostgreSQL down).

Files are created under an unpredictable temporary name with ``O_EXCL|O_NOFOLLOW`` and renamed
into place (a rename replaces a planted link, it never writes through it), and read with
``O_NOFOLLOW``.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


class Unsafe(Exception):
    """Why a folder cannot be spiffctl's private folder: a few words, e.g. ``is a symbolic link``."""


def refusal(path: Path) -> str | None:
    """Why ``path`` (which exists) is not a private folder of ours, or ``None`` when it is."""
    try:
        st = os.lstat(path)
    except OSError as e:
        return f"cannot be checked ({e.strerror or type(e).__name__})"
    return _why(st)


def _why(st: os.stat_result) -> str | None:
    if stat.S_ISLNK(st.st_mode):
        return "is a symbolic link"
    if not stat.S_ISDIR(st.st_mode):
        return "is not a folder"
    if st.st_uid != os.geteuid():
        return f"is owned by uid {st.st_uid}, not by uid {os.geteuid()} that spiffctl runs as"
    writers = [who for who, bit in (("group", 0o020), ("others", 0o002)) if st.st_mode & bit]
    if writers:
        return f"is writable by {' and '.join(writers)} (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def ensure(path: Path, *, create: bool) -> bool:
    """Check ``path`` is a private folder of ours; with ``create``, make it (0700) when missing.

    Returns whether the folder exists. Raises :class:`Unsafe` with the reason otherwise."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if not create:
            return False
        _make(path)
        st = os.lstat(path)
    except OSError as e:
        raise Unsafe(f"cannot be used ({e.strerror or type(e).__name__})") from None
    why = _why(st)
    if why:
        raise Unsafe(why)
    if os.geteuid() != 0 and not os.access(path, os.W_OK | os.X_OK):
        raise Unsafe("is not writable by spiffctl")
    return True


def _make(path: Path) -> None:
    try:
        # Missing parents get the default mode: they are not ours to make private.
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            return  # made by someone else meanwhile: checked like any existing folder
        # The umask may have taken bits away; set exactly 0700 on the folder just made, through
        # a descriptor that cannot follow a link swapped in since.
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fchmod(fd, 0o700)
        finally:
            os.close(fd)
    except OSError as e:
        raise Unsafe(f"cannot be created ({e.strerror or type(e).__name__})") from None


def write_bytes(path: Path, data: bytes) -> None:
    """``path`` replaced atomically (readers never see half a file), 0600, never through a link."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, _CREATE, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_bytes(path: Path, limit: int = 1 << 20) -> bytes:
    """At most ``limit`` bytes of a regular file; a link, FIFO or device raises ``OSError``."""
    fd = os.open(path, _READ | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        return f.read(limit)
