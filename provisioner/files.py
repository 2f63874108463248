"""Private files written whole or not at all."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def write_private(path: Path, text: str, owner: tuple[int, int] | None = None) -> None:
    """Write `text` to `path` with mode 0600, atomically: a temporary file in the same directory, fsync, rename.

    A reader sees the old file or the new one, never half of one; a full disk leaves the old file in place.
    `owner` (uid, gid) hands the file to the VM's user when we run as root for them; without it, root rewriting a
    file keeps the file's owner, so that `provisioner stop` as root leaves the user's state file theirs.
    """
    if owner is None and os.geteuid() == 0:
        with contextlib.suppress(OSError):
            info = path.stat()
            owner = (info.st_uid, info.st_gid)
    # O_EXCL with a random name is what tempfile.mkstemp does, without importing tempfile on the way to the server.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        if owner is not None:
            os.fchown(fd, *owner)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def tail(path: Path, lines: int = 5, limit: int = 64 * 1024) -> list[str]:
    """The last non-empty lines of a file, reading at most `limit` bytes from its end."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - limit))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line.rstrip() for line in text.splitlines() if line.strip()][-lines:]
