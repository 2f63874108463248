"""The record of a provisioning, typed: what the state file holds, read and written here and nowhere else.

The state file is the only handle `resume`, `stop` and an operator have on a run and its server. Its account can
edit it, so reading it is parsing untrusted input: every value is checked for the type and range the provisioner
uses it as, and a record that fails is not ours (the store sets it aside). Schema 1 files (before callbacks were
recorded pending) are read and upgraded; schema 2 is written.
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

SCHEMA = 2
BOOT_STATE = "boot"  # the first history entry of a run the boot unit started after a reboot: an event, not a state
STOPPED_STATE = "stopped"  # the record's state after `jupyter-init stop`: an event on the run, not a machine state
PID_MAX = 1 << 22  # the kernel's largest pid_max
MASK = "***"
URL_SETTINGS = ("start_url", "complete_url", "progress_url")


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
