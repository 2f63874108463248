"""Reading a state file's record back: every value checked for its kind and range, as data another account may have
written (the record lives in the account's directory). RecordError names the first value that is not what it must be."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from provisioner.record import (
    PID_MAX,
    SCHEMA,
    Callback,
    Delivery,
    Failure,
    Outcome,
    Record,
    Server,
    Step,
    StepOutcome,
)


class RecordError(ValueError):
    """A record that is not one of ours: `problem` says which value, in one line."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def parse(data: object, check_settings: Callable[[Mapping[str, Any]], bool]) -> Record:
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
    record = Record(
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
