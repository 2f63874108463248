"""Files read and written safely: whole or not at all, and never a FIFO, a device or a link taken for a file."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

READ_LIMIT = 1024 * 1024  # our own files are a few KiB: more is not ours, and is not read


def write_private(path: Path, text: str | bytes) -> None:
    """Write `text` (or bytes) to `path` with mode 0600, atomically: a temporary file beside it, fsync, rename.

    A reader sees the old file or the new one, never half of one; a full disk leaves the old file in place. The
    rename replaces whatever was at `path` (a link too) rather than writing through it.
    """
    # O_EXCL with a random name is what tempfile.mkstemp does, without importing tempfile on the way to the server.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode() if isinstance(text, str) else text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def open_regular(path: Path, flags: int, mode: int = 0o600, *, follow: bool = False) -> int:
    """os.open() for a file that must be a regular file: a FIFO or a device fails at once instead of blocking or
    being read, and (unless `follow`) a link in its place fails instead of being followed. Returns the descriptor."""
    flags |= os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "it is a symbolic link, not a file", str(path)) from None
        if exc.errno == errno.ENXIO:  # O_WRONLY on a FIFO no one reads
            raise OSError(errno.ENXIO, "it is not a regular file", str(path)) from None
        raise
    kind = os.fstat(fd).st_mode
    if not stat.S_ISREG(kind):
        os.close(fd)
        raise OSError(errno.EINVAL, "it is not a regular file", str(path))
    os.set_blocking(fd, True)
    return fd


def read_regular(path: Path, limit: int = READ_LIMIT, *, follow: bool = False) -> bytes:
    """The content of a regular file of at most `limit` bytes; OSError for anything else (see open_regular)."""
    fd = open_regular(path, os.O_RDONLY, follow=follow)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"it is larger than {limit} bytes", str(path))
    return data


def tail(path: Path, lines: int = 5, limit: int = 64 * 1024) -> list[str]:
    """The last non-empty lines of a regular file, reading at most `limit` bytes from its end."""
    try:
        fd = open_regular(path, os.O_RDONLY)
        with os.fdopen(fd, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - limit))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line.rstrip() for line in text.splitlines() if line.strip()][-lines:]
