"""The state file, the token file and the lock, in the output directory.

- `provisioner-state.json` (0600): what happened, rewritten atomically after every transition. A file that does not
  parse, or was written by a newer provisioner, is moved aside under a new name and reported, never overwritten.
- `provisioner-token` (0600): the token, so that `provisioner resume` needs no secret on its command line. The state
  file never holds it.
- `provisioner.lock`: one run at a time. flock is released by the kernel when the process dies, even by SIGKILL,
  so a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

from provisioner.context import log
from provisioner.errors import LockedError, UsageError
from provisioner.files import open_regular, read_regular, write_private
from provisioner.settings import SETTING_PARSERS, Secret

SCHEMA = 1
STATE_FILE = "provisioner-state.json"
TOKEN_FILE = "provisioner-token"  # noqa: S105 - a file name
LOCK_FILE = "provisioner.lock"
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
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            holder = holder if holder.isdigit() else "unknown"  # what is in the file is not ours to print
            os.close(fd)
            raise LockedError(
                f"another provisioner run (pid {holder}) is using {self.out}; wait for it to finish"
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

    def load(self) -> dict[str, Any] | None:
        """The recorded state, or None. An unreadable file is moved aside (and said so) when we hold the lock."""
        try:
            text = read_regular(self.path).decode("utf-8", "replace")
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("warning: cannot read %s: %s", self.path, exc.strerror or exc)
            return None
        try:
            record = json.loads(text)
            problem = None if isinstance(record, dict) else "it is not a JSON object"
        except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than any record of ours
            record, problem = None, f"it is not valid JSON ({type(exc).__name__})"
        if problem is None:
            schema = record.get("schema")
            if not isinstance(schema, int) or schema < 1:
                problem = "it has no schema version"
            elif schema > SCHEMA:
                problem = f"it was written by a newer provisioner (schema {schema}; this one reads {SCHEMA})"
            else:
                problem = shape_problem(record)
        if problem is None:
            assert isinstance(record, dict)
            return record
        self._set_aside(problem)
        return None

    def _set_aside(self, problem: str) -> None:
        if self._lock_fd is None:  # a reader does not move other people's files
            log.warning("warning: ignoring %s: %s", self.path, problem)
            return
        aside = self.path.with_name(f"{STATE_FILE}.unreadable-{time.strftime('%Y%m%dT%H%M%S')}")
        os.replace(self.path, aside)
        log.warning("warning: %s: %s; moved it to %s and started a new one", self.path, problem, aside.name)

    def save(self, record: dict[str, Any]) -> None:
        """Write the record atomically. A failure is reported, never raised: the run matters more than its log."""
        try:
            write_private(self.path, json.dumps(record, indent=2, sort_keys=False) + "\n")
        except OSError as exc:
            log.warning("warning: cannot write %s: %s", self.path, exc.strerror or exc)

    def save_token(self, token: Secret) -> None:
        """Keep the token for `provisioner resume`; failing to is reported, and only resume needs it."""
        try:
            write_private(self.out / TOKEN_FILE, token.reveal())
        except OSError as exc:
            log.warning("warning: cannot keep the token for resume in %s: %s", self.out, exc.strerror or exc)

    def load_token(self) -> Secret:
        """The token kept for resume; OSError if it is missing or is not a file of ours (a link, a FIFO...)."""
        return Secret(read_regular(self.out / TOKEN_FILE, TOKEN_LIMIT).decode("utf-8"))


# What the record's values must be, wherever the provisioner reads them: its account can edit the file, so a value
# of another type is a record that is not ours (set aside), never a traceback. Exact types: true is not a number.
_STR, _INT, _NUM, _BOOL, _DICT = (str,), (int,), (int, float), (bool,), (dict,)
_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "": {"state": _STR, "outcome": _STR, "updated": _STR, "provisioner_pid": _INT, "port": _INT},
    "server": {"pid": _INT, "start_time": _INT, "exe": _STR, "unit": _STR, "port": _INT, "url": _STR, "started": _STR},
    "failure": {"state": _STR, "reason": _STR, "message": _STR},
    "definition": {"source": _STR, "digest": _STR},
    "history": {"state": _STR, "entered": _STR, "left": _STR, "duration": _NUM, "outcome": _STR, "reason": _STR},
    "callbacks": {"endpoint": _STR, "status": _STR, "reason": _STR, "fields": _DICT, "attempts": _INT},
}


def shape_problem(record: dict[str, Any]) -> str | None:
    """What makes a record unusable, or None: each value has the type the provisioner reads it as, and the value."""
    return _type_problem(record) or _value_problem(record)


def _type_problem(record: dict[str, Any]) -> str | None:
    objects: list[tuple[str, object]] = [("", record)]
    objects += [(name, record[name]) for name in ("server", "failure", "definition", "settings") if record.get(name)]
    for name in ("history", "callbacks"):
        entries = record.get(name, [])
        if type(entries) is not list:
            return f"{name} is not a list"
        objects += [(name, entry) for entry in entries]
    for name, value in objects:
        if type(value) is not dict:
            return f"{name or 'the record'} holds something that is not an object"
        for key, types in _FIELDS.get(name, {}).items():
            if value.get(key) is not None and type(value[key]) not in types:
                return f"{name + '.' if name else ''}{key} is not a {types[0].__name__}"
    return None


def _value_problem(record: dict[str, Any]) -> str | None:
    server = record.get("server") or {}
    problems = {
        "server.pid is not a process id": server and not (type(server.get("pid")) is int and server["pid"] > 0),
        "a port is not a port": any(
            p is not None and not 0 < p < 65536 for p in (record.get("port"), server.get("port"))
        ),
        "a recorded setting is not what it must be": not _settings_ok(record.get("settings") or {}),
        "a duration is not a number of seconds": not all(
            0 <= entry.get("duration", 0) < 1e9
            for entry in record.get("history", [])
            if entry.get("duration") is not None
        ),
        "a callback's fields are not text": not all(
            type(value) is str
            for callback in record.get("callbacks", [])
            for value in callback.get("fields", {}).values()
        ),
    }
    return next((problem for problem, found in problems.items() if found), None)


def _settings_ok(settings: dict[str, Any]) -> bool:
    """The recorded settings that `stop`, `state` and a repeated `run` use before any are resolved again."""
    try:
        for name in ("ip", "port", "base_url", "timeout", "module", "launcher", "idle_timeout"):
            if settings.get(name) is not None:
                SETTING_PARSERS[name](settings[name], f"settings.{name}")
    except (ValueError, TypeError, UsageError):
        return False
    return True
