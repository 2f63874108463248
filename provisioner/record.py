"""The record of a provisioning, typed: what the state file holds, read and written here and nowhere else.

The state file is the only handle `resume`, `stop` and an operator have on a run and its server. Its account can
edit it, so reading it is parsing untrusted input: every value is checked for the type and range the provisioner
uses it as, and a record that fails is not ours (the store sets it aside). Schema 1 files (before callbacks were
recorded pending) are read and upgraded; schema 2 is written.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit, urlunsplit

SCHEMA = 2
BOOT_STATE = "boot"  # the first history entry of a run the boot unit started after a reboot: an event, not a state
STOPPED_STATE = "stopped"  # the record's state after `jupyter-init stop`: an event on the run, not a machine state
PID_MAX = 1 << 22  # the kernel's largest pid_max
MASK = "***"
URL_SETTINGS = ("start_url", "complete_url", "progress_url")


class RecordError(ValueError):
    """A record that is not one of ours: `problem` says which value, in one line."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


class Outcome(str, enum.Enum):
    """The run's outcome, as `state` reports it."""

    RUNNING = "running"
    READY = "ready"
    FAILED = "failed"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"


class StepOutcome(str, enum.Enum):
    """How a history entry ended; an entry with none never finished (the run was interrupted in it)."""

    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"  # done by an earlier run, passed through on resume


class Delivery(str, enum.Enum):
    """Where a callback is: queued and not yet answered, answered with a 2xx, or given up on for now."""

    PENDING = "pending"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def mask_url(url: str | None) -> str | None:
    """`url` without its secrets: the user information and every query value become ***.

    A platform may put a password or a signed key in a callback URL; the record, `state --json` and our output show
    where callbacks go, never how they authenticate."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return MASK
    netloc = f"[{host}]" if ":" in host else host
    netloc = (f"{MASK}@" if "@" in parts.netloc else "") + netloc + (f":{port}" if port is not None else "")
    # A bare key (`?s3cr3t`) is as secret as a value.
    pairs = [(name, MASK) if value else (MASK, "") for name, value in parse_qsl(parts.query, keep_blank_values=True)]
    query = "&".join(f"{name}={value}" if value else name for name, value in pairs)
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def url_secrets(url: str | None) -> list[str]:
    """The parts of `url` that mask_url hides and that are worth redacting anywhere (the password, query values)."""
    if not url:
        return []
    try:
        parts = urlsplit(url)
        found = [parts.password or ""]  # not the user name: `jupyter` in a URL is no secret, and would mask jupyter.log
    except ValueError:
        return []
    found += [value or name for name, value in parse_qsl(parts.query, keep_blank_values=True)]
    # As written too: an error that quotes the URL quotes it percent-encoded (`sig=Zm9v%2BYmFy`).
    found += [field.partition("=")[2] or field for field in parts.query.split("&")]
    # Shorter than 4: would mask innocent text, and guesses nothing.
    return list(dict.fromkeys(value for value in found if len(value) >= 4))


@dataclass
class Step:
    """One history entry: a state entered, and how it ended."""

    state: str
    entered: str
    left: str | None = None
    duration: float | None = None
    outcome: StepOutcome | None = None
    reason: str | None = None
    error: str | None = None
    started_server: bool = False


@dataclass
class Server:
    """The server a run started: identified by PID, start time (clock ticks since boot) and program."""

    pid: int
    start_time: int | None
    started: str
    exe: str | None = None
    unit: str | None = None
    port: int | None = None
    url: str | None = None  # without the token; set once the server is handed over
    stopped: str | None = None
    # With TLS, the certificate it was started with: what an adopting or resumed run pins (tls.Certificate).
    certfile: str | None = None
    keyfile: str | None = None
    fingerprint: str | None = None
    boot_id: str | None = None  # the kernel's id of the boot it was started in: after a reboot it is another


@dataclass
class Callback:
    """One callback, recorded pending the moment it is queued; the reporter fills in what became of it."""

    endpoint: str  # start, complete or progress
    fields: dict[str, str]
    queued: str = field(default_factory=now)
    delivery: Delivery = Delivery.PENDING
    attempts: int = 0
    http_status: int | None = None
    error: str | None = None
    url: str | None = None  # where it went last, masked (a 307/308 may have moved it)
    # Not recorded: set when this process is done with it (delivered or given up), for the reporter's close().
    done: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)
    # Not recorded: set once later callbacks need not wait for it (delivered, given up, or an attempt failed).
    passed: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    @property
    def status(self) -> str | None:
        return self.fields.get("status")

    @property
    def reason(self) -> str | None:
        return self.fields.get("reason")

    @property
    def delivered(self) -> bool:
        return self.delivery is Delivery.DELIVERED


@dataclass
class Failure:
    state: str
    reason: str
    message: str


@dataclass
class Record:
    """The whole record. Mutable: the journal changes it under its lock and saves it."""

    outcome: Outcome = Outcome.RUNNING
    state: str | None = None
    history: list[Step] = field(default_factory=list)
    callbacks: list[Callback] = field(default_factory=list)
    server: Server | None = None
    failure: Failure | None = None
    port: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    definition: dict[str, str] = field(default_factory=dict)
    provisioner_pid: int | None = None
    updated: str | None = None
    boot: int | None = None  # started by the boot unit: which boot of the VM (2 after the first reboot)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "state": self.state,
            "outcome": self.outcome.value,
            "failure": _plain(self.failure),
            "history": [_plain(step) for step in self.history],
            "server": _plain(self.server),
            "port": self.port,
            "callbacks": [_plain(callback) for callback in self.callbacks],
            # Masked here too: a schema 1 record read back holds the URLs whole.
            "settings": {
                name: mask_url(value) if name in URL_SETTINGS and isinstance(value, str) else value
                for name, value in self.settings.items()
            },
            "definition": self.definition,
            "provisioner_pid": self.provisioner_pid,
            "updated": self.updated,
            "boot": self.boot,
        }

    @classmethod
    def from_json(cls, data: object, check_settings: Callable[[Mapping[str, Any]], bool]) -> Record:
        """Parse a state file's object; RecordError names the first value that is not what it must be."""
        raw = _Object(data, "the record")
        schema = raw.require("schema", int)
        if schema < 1:
            raise RecordError("it has no schema version")
        if schema > SCHEMA:
            raise RecordError(f"it was written by a newer jupyter-init (schema {schema}; this one reads {SCHEMA})")
        settings = raw.get("settings", dict) or {}
        if not check_settings(settings):
            raise RecordError("a recorded setting is not what it must be")
        record = cls(
            outcome=raw.enum("outcome", Outcome, Outcome.RUNNING),
            state=raw.get("state", str),
            history=[_step(entry) for entry in raw.items("history")],
            callbacks=[_callback(entry, schema) for entry in raw.items("callbacks")],
            server=_server(raw.child("server")),
            failure=_failure(raw.child("failure")),
            port=_port(raw.get("port", int), "port"),
            settings=settings,
            definition=_definition(raw.child("definition")),
            provisioner_pid=raw.get("provisioner_pid", int),
            updated=raw.get("updated", str),
            boot=raw.get("boot", int),
        )
        return record


T = TypeVar("T")
_KINDS = {int: "a whole number", float: "a number", str: "text", bool: "true or false", dict: "an object"}
E = TypeVar("E", bound=enum.Enum)


class _Object:
    """A JSON object being read: typed getters that raise RecordError naming the value (exact types: true is no int)."""

    def __init__(self, data: object, where: str) -> None:
        if type(data) is not dict:
            raise RecordError(f"{where} is not an object")
        self.data: dict[str, Any] = data
        self.where = where

    def get(self, key: str, kind: type[T]) -> T | None:
        value = self.data.get(key)
        if value is None:
            return None
        if type(value) is not kind and not (kind is float and type(value) is int):
            raise RecordError(f"{self._name(key)} is not {_KINDS.get(kind, kind.__name__)}")
        return value  # type: ignore[return-value]

    def require(self, key: str, kind: type[T]) -> T:
        value = self.get(key, kind)
        if value is None:
            raise RecordError(f"{self._name(key)} is missing")
        return value

    def enum(self, key: str, kind: type[E], default: E) -> E:
        value = self.get(key, str)
        if value is None:
            return default
        try:
            return kind(value)
        except ValueError:
            raise RecordError(f"{self._name(key)} is not one of {', '.join(str(m.value) for m in kind)}") from None

    def child(self, key: str) -> _Object | None:
        value = self.data.get(key)
        return None if value is None else _Object(value, self._name(key))

    def items(self, key: str) -> list[_Object]:
        value = self.data.get(key)
        if value is None:
            return []
        if type(value) is not list:
            raise RecordError(f"{self._name(key)} is not a list")
        return [_Object(item, f"{self._name(key)}[{index}]") for index, item in enumerate(value)]

    def _name(self, key: str) -> str:
        return key if self.where == "the record" else f"{self.where}.{key}"


def _port(port: int | None, name: str) -> int | None:
    if port is not None and not 0 < port < 65536:
        raise RecordError(f"{name} is not a port")
    return port


def _definition(raw: _Object | None) -> dict[str, str]:
    if raw is None:
        return {}
    values = {key: raw.get(key, str) for key in ("source", "digest")}
    return {key: value for key, value in values.items() if value is not None}


def _step(raw: _Object) -> Step:
    duration = raw.get("duration", float)
    if duration is not None and not 0 <= duration < 1e9:
        raise RecordError(f"{raw.where}.duration is not a number of seconds")
    outcome = raw.get("outcome", str)
    return Step(
        state=raw.require("state", str),
        entered=raw.get("entered", str) or "",
        left=raw.get("left", str),
        duration=duration,
        outcome=None if outcome is None else raw.enum("outcome", StepOutcome, StepOutcome.OK),
        reason=raw.get("reason", str),
        error=raw.get("error", str),
        started_server=bool(raw.get("started_server", bool)),
    )


def _server(raw: _Object | None) -> Server | None:
    if raw is None:
        return None
    pid = raw.require("pid", int)
    if not 2 <= pid <= PID_MAX:  # 1 is init, never our server; and killpg(1) would be kill(-1)
        raise RecordError("server.pid is not a process id")
    return Server(
        pid=pid,
        start_time=raw.get("start_time", int),
        started=raw.get("started", str) or "",
        exe=raw.get("exe", str),
        unit=raw.get("unit", str),
        port=_port(raw.get("port", int), "server.port"),
        url=raw.get("url", str),
        stopped=raw.get("stopped", str),
        certfile=raw.get("certfile", str),
        keyfile=raw.get("keyfile", str),
        fingerprint=raw.get("fingerprint", str),
        boot_id=raw.get("boot_id", str),
    )


def _failure(raw: _Object | None) -> Failure | None:
    if raw is None:
        return None
    return Failure(raw.get("state", str) or "", raw.get("reason", str) or "", raw.get("message", str) or "")


def _callback(raw: _Object, schema: int) -> Callback:
    fields = raw.get("fields", dict) or {}
    if not all(type(name) is str and type(value) is str for name, value in fields.items()):
        raise RecordError(f"{raw.where}.fields are not text")
    if schema == 1:  # delivered: true/false; nothing was recorded before its first attempt
        delivery = Delivery.DELIVERED if raw.get("delivered", bool) else Delivery.UNDELIVERED
    else:
        delivery = raw.enum("delivery", Delivery, Delivery.PENDING)
    attempts = raw.get("attempts", int) or 0
    callback = Callback(
        endpoint=raw.require("endpoint", str),
        fields=dict(fields),
        queued=raw.get("queued", str) or "",
        delivery=delivery,
        attempts=max(attempts, 0),
        http_status=raw.get("http_status", int),
        error=raw.get("error", str),
        url=raw.get("url", str),
    )
    if delivery is not Delivery.PENDING:
        callback.done.set()
    return callback


def _plain(value: Step | Server | Callback | Failure | None) -> dict[str, Any] | None:
    """A record part as JSON: enums as their values, the reporter's event left out."""
    if value is None:
        return None
    plain: dict[str, Any] = {}
    for name in value.__dataclass_fields__:
        item = getattr(value, name)
        if isinstance(item, threading.Event):
            continue
        plain[name] = item.value if isinstance(item, enum.Enum) else item
    if isinstance(value, Callback):  # for readers of the file: what the fields say, without parsing them
        plain = {"endpoint": value.endpoint, "status": value.status, "reason": value.reason, **plain}
    return plain
