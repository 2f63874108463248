"""The state file, the token file and the lock, in the output directory.

- `provisioner-state.json` (0600): what happened, rewritten atomically after every transition. A file that does not
  parse, or was written by a newer provisioner, is moved aside under a new name and reported, never overwritten.
- `provisioner-token` (0600): the token, so that `jupyter-init resume` needs no secret on its command line. The state
  file never holds it.
- `provisioner-endpoints.json` (0600): the callback URLs, when the record masks secrets in them.
- `provisioner.lock`: one run at a time. flock is released by the kernel when the process dies, even by SIGKILL,
  so a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from provisioner.errors import LockedError
from provisioner.files import READ_LIMIT, open_regular, read_regular, write_private
from provisioner.output import log
from provisioner.record import Record, mask_url
from provisioner.recordread import RecordError, parse
from provisioner.secret import Secret
from provisioner.settings import OPTIONS
from provisioner.values import BadValue

STATE_FILE = "provisioner-state.json"
TOKEN_FILE = "provisioner-token"  # noqa: S105 - a file name
LOCK_FILE = "provisioner.lock"
ENDPOINTS_FILE = "provisioner-endpoints.json"
LOCK_PATIENCE = 0.25  # seconds a run waits for the lock before it says another run holds it
TOKEN_LIMIT = 64 * 1024  # a token is a word: a token file larger than this is not one


class Store:
    """Reads and writes one output directory's state; `lock()` makes this process its only writer."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self._lock_fd: int | None = None

    @property
    def path(self) -> Path:
        return self.out / STATE_FILE

    def lock(self, create: bool = True) -> None:
        """Take the directory's lock, creating the directory (0700) if needed and `create`; LockedError if another
        run has it. A link or a FIFO in the lock file's place is an OSError, never followed or waited on."""
        if create:
            self.out.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = open_regular(self.out / LOCK_FILE, os.O_RDWR | os.O_CREAT)
        try:
            _flock_soon(fd)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            holder = holder if holder.isdigit() else "unknown"  # what is in the file is not ours to print
            os.close(fd)
            raise LockedError(
                f"another jupyter-init run (pid {holder}) is using {self.out}; wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def locked_by_another(self) -> bool:
        """Whether a run is in progress right now (without taking the lock for long)."""
        try:
            fd = open_regular(self.out / LOCK_FILE, os.O_RDWR)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def load(self) -> Record | None:
        """The recorded run, or None. An unreadable file is moved aside (and said so) when we hold the lock."""
        try:
            text = read_regular(self.path).decode("utf-8", "replace")
        except FileNotFoundError:
            return None
        except OSError as exc:  # too large, a FIFO, a link: set aside as any record we cannot use, never overwritten
            self._set_aside(f"cannot read it ({exc.strerror or exc})")
            return None
        try:
            return parse(json.loads(text), _settings_ok)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than any record of ours
            problem = exc.problem if isinstance(exc, RecordError) else f"it is not valid JSON ({type(exc).__name__})"
        self._set_aside(problem)
        return None

    def _set_aside(self, problem: str) -> None:
        if self._lock_fd is None:  # a reader does not move other people's files
            log.warning("warning: ignoring %s: %s", self.path, problem)
            return
        aside = self.path.with_name(f"{STATE_FILE}.unreadable-{time.strftime('%Y%m%dT%H%M%S')}")
        try:
            os.replace(self.path, aside)
        except OSError as exc:
            log.warning("warning: ignoring %s: %s; cannot move it aside: %s", self.path, problem, exc.strerror or exc)
            return
        log.warning("warning: %s: %s; moved it to %s and started a new one", self.path, problem, aside.name)

    def save(self, record: Record) -> str | None:
        """Write the record; None, or why it could not be written (the caller says it, once).

        Atomically when the disk allows. When it is full, the record is rewritten in place instead, if it fits in the
        room the old file has: a record that says how the run ended is worth more than one that is whole but stale.
        """
        text = json.dumps(record.to_json(), indent=2) + "\n"
        try:
            write_private(self.path, text)
            return None
        except OSError as exc:
            problem = f"cannot write {self.path}: {exc.strerror or exc}"
            full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        if full:
            with contextlib.suppress(OSError):
                _rewrite(self.path, text)
        return problem

    def save_token(self, token: Secret) -> str | None:
        """Keep the token for `jupyter-init resume`; None, or why it could not be kept."""
        try:
            write_private(self.out / TOKEN_FILE, token.reveal())
        except OSError as exc:
            return f"cannot keep the token for resume in {self.out}: {exc.strerror or exc}"
        return None

    def save_endpoints(self, given: Mapping[str, Any], *, only: bool = True) -> str | None:
        """Keep the callback URLs (by setting name) whose secrets the record masks (user information, query values),
        for resume; None, or why they could not be kept. `only`: these are the run's URLs, and without such URLs no
        file is left behind."""
        urls = {name: url for name, url in given.items() if isinstance(url, str) and url and mask_url(url) != url}
        path = self.out / ENDPOINTS_FILE
        try:
            if urls:
                write_private(path, json.dumps(urls) + "\n")
            elif only:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        except OSError as exc:
            return f"cannot keep the callback URLs for resume in {self.out}: {exc.strerror or exc}"
        return None

    def load_endpoints(self) -> dict[str, str]:
        """The URLs save_endpoints kept, by setting name; {} when there are none, or none that are text."""
        try:
            kept = json.loads(read_regular(self.out / ENDPOINTS_FILE, TOKEN_LIMIT))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, RecursionError) as exc:
            log.warning("warning: cannot read the kept callback URLs in %s: %s", self.out, exc)
            return {}
        if type(kept) is not dict:
            return {}
        return {name: url for name, url in kept.items() if type(name) is str and type(url) is str}

    def load_token(self) -> Secret:
        """The token kept for resume; OSError if it is missing or is not a file of ours (a link, a FIFO...)."""
        return Secret(read_regular(self.out / TOKEN_FILE, TOKEN_LIMIT).decode("utf-8"))


def _rewrite(path: Path, text: str) -> None:
    """Overwrite the existing regular file at `path` in place, if `text` fits in the room it already has on disk
    (see Store.save); otherwise ENOSPC, and the old file stays whole."""
    data = text.encode()
    fd = open_regular(path, os.O_RDWR)
    try:
        info = os.fstat(fd)
        if len(data) > max(info.st_size, info.st_blocks * 512) or info.st_size > READ_LIMIT:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        old = os.pread(fd, info.st_size, 0)
        if os.pwrite(fd, data, 0) != len(data):  # a copy-on-write file system can run out of room even here
            os.pwrite(fd, old, 0)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        os.ftruncate(fd, len(data))
        os.fsync(fd)
    finally:
        os.close(fd)


def _flock_soon(fd: int) -> None:
    """The lock, if it is free within a moment: `state` takes it for an instant to see whether a run holds it, and a
    run that starts in that instant must not take it for another run's. BlockingIOError if it stays held."""
    give_up = time.monotonic() + LOCK_PATIENCE
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= give_up:
                raise
            time.sleep(0.01)


def _settings_ok(settings: Mapping[str, Any]) -> bool:
    """The recorded settings that `stop`, `state` and a repeated `run` use before any are resolved again. A run
    records each of them with a value: one there as null was not written by a run."""
    try:
        for name in ("ip", "port", "base_url", "timeout", "module", "launcher", "idle_timeout", "app"):
            if name in settings:
                OPTIONS[name].parse(settings[name])
    except (BadValue, TypeError):
        return False
    return True
