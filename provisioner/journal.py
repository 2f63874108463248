"""The record of a provisioning, kept across runs and resumes, and the plan for resuming it.

The record is the state file's content (documented in the README): the state, a history entry per state entered,
the server, and every callback with its delivery outcome. It never holds the token.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from provisioner import server
from provisioner.context import RunContext
from provisioner.definition import OK, Definition
from provisioner.errors import StepFailed
from provisioner.reporter import Delivery
from provisioner.settings import Settings
from provisioner.store import SCHEMA, Store

RUNNING, READY, FAILED, STOPPED, INTERRUPTED = "running", "ready", "failed", "stopped", "interrupted"
SKIPPED = "skipped"  # a history entry's outcome: done by an earlier run, passed through on resume


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Journal:
    """Keeps the record up to date and saves it after every change that matters.

    The machine changes the record in the main thread while callbacks finish, and save it, in the reporter's threads:
    one lock covers every change and every save, so a save never serialises a record half-changed.
    """

    def __init__(self, store: Store | None, previous: dict[str, Any] | None = None) -> None:
        self.store = store
        self._lock = threading.RLock()
        self.record: dict[str, Any] = dict(previous) if previous else {}
        self.record["schema"] = SCHEMA
        self.record.setdefault("history", [])
        self._earlier_callbacks: list[dict[str, Any]] = list(self.record.get("callbacks", []))
        self._deliveries: Sequence[Delivery] = ()
        self._entered_at = 0.0
        self.ctx: RunContext | None = None

    def begin(
        self, definition: Definition, settings: Settings, ctx: RunContext, deliveries: Sequence[Delivery]
    ) -> None:
        with self._lock:
            self.ctx = ctx
            self._deliveries = deliveries
            self.record.update(
                definition={"source": definition.source, "digest": definition.digest},
                settings=settings.public(),
                outcome=RUNNING,
                failure=None,
                provisioner_pid=os.getpid(),
            )

    # The machine's hooks.
    def enter(self, state: str) -> None:
        with self._lock:
            self._entered_at = time.monotonic()
            self.record["state"] = state
            entry = {"state": state, "entered": now(), "left": None, "duration": None}
            self.record["history"].append({**entry, "outcome": None, "reason": None, "error": None})
            self.save()

    def leave(self, outcome: str, error: StepFailed | None = None, started_server: bool = False) -> None:
        with self._lock:
            entry = self.record["history"][-1]
            entry.update(left=now(), duration=round(time.monotonic() - self._entered_at, 3), outcome=outcome)
            if error is not None:
                entry.update(reason=error.reason, error=error.message)
                self.record["failure"] = {"state": entry["state"], "reason": error.reason, "message": error.message}
            if started_server:
                entry["started_server"] = True
            self.save()

    def interrupted(self, message: str) -> None:
        """Say why the state in progress never finished; it stays unfinished, so that resume runs it again."""
        with self._lock:
            entry = self.record["history"][-1] if self.record["history"] else None
            if entry is not None and entry.get("outcome") is None:
                entry["error"] = message

    def finish(self, outcome: str) -> None:
        with self._lock:
            self.record["outcome"] = outcome
            self.save()

    def stopped(self) -> None:
        with self._lock:
            self.record["outcome"] = STOPPED
            if self.record.get("server"):
                self.record["server"]["stopped"] = now()
            self.save()

    # Callbacks: what earlier runs delivered is kept; what this run sends is added as it goes.
    def delivered(self) -> set[tuple[str, str | None, str | None]]:
        return {_key(c) for c in self._earlier_callbacks if c.get("delivered")}

    def undelivered(self) -> list[dict[str, Any]]:
        return [c for c in self._earlier_callbacks if not c.get("delivered")]

    def save(self) -> None:
        """Write the record as it is now; called by the machine, and by the reporter's threads as callbacks end."""
        with self._lock:
            if self.ctx is not None:
                self._note_server(self.ctx)
            delivered_before = [c for c in self._earlier_callbacks if c.get("delivered")]
            self.record["callbacks"] = delivered_before + [d.record() for d in self._deliveries]
            self.record["updated"] = now()
            if self.store is not None:
                self.store.save(self.record)

    def _note_server(self, ctx: RunContext) -> None:
        if ctx.port is not None:
            self.record["port"] = ctx.port
        if ctx.pid is not None:
            recorded = self.record.get("server") or {}
            if recorded.get("pid") != ctx.pid:
                recorded = {"pid": ctx.pid, "start_time": ctx.pid_start, "started": now()}
            recorded.update(port=ctx.port, url=ctx.url() if ctx.handed_over else None, unit=ctx.unit, exe=ctx.pid_exe)
            self.record["server"] = recorded


def _key(callback: dict[str, Any]) -> tuple[str, str | None, str | None]:
    return (callback.get("endpoint", ""), callback.get("status"), callback.get("reason"))


def server_alive(record: dict[str, Any]) -> bool:
    """Whether the recorded server still runs: same PID, start time, owner and program (see server.alive)."""
    recorded = record.get("server") or {}
    pid = recorded.get("pid")
    return isinstance(pid, int) and server.alive(pid, start_time=recorded.get("start_time"), exe=recorded.get("exe"))


@dataclass(frozen=True)
class Plan:
    """Where a resumed run starts, and which states it passes through without running their actions."""

    start: str | None  # None: nothing left to run
    skip: frozenset[str]


def plan_resume(record: dict[str, Any], definition: Definition, alive: bool) -> Plan:
    """Re-run the state that failed or was interrupted, and the process-local states before it; skip the rest.

    When the recorded server is gone, its state of origin (the one that started it) is where the work resumes.
    """
    history: list[dict[str, Any]] = record.get("history", [])
    current = record.get("state")
    if not isinstance(current, str) or not definition.has_state(current):
        return Plan(definition.initial, frozenset())
    starter = _last_index(history, lambda e: bool(e.get("started_server")))
    last = history[-1] if history else {}
    finished = definition.state(current).final and last.get("state") == current and last.get("outcome") == OK
    stop_at: int | None
    if finished and record.get("failure") is None:
        if alive or starter is None:
            return Plan(None, frozenset())
        stop_at = starter  # ready once, but the server is gone (the VM rebooted, or it was stopped)
    else:
        failure = record.get("failure") or {}
        stop_at = _last_index(history, lambda e: e.get("state") == failure.get("state") and e.get("outcome") == FAILED)
        if stop_at is None:  # interrupted: the state entered and never left
            stop_at = _last_index(history, lambda e: e.get("state") == current and e.get("outcome") is None)
        if stop_at is None:
            return Plan(definition.initial, frozenset())
        if starter is not None and starter < stop_at and not alive:
            stop_at = starter
    completed = _completed(history[:stop_at], definition)
    rerun = [state for state in completed if definition.state(state).process_local]
    start = rerun[0] if rerun else history[stop_at]["state"]
    return Plan(start, frozenset(completed) - set(rerun))


def _last_index(history: list[dict[str, Any]], match: Any) -> int | None:
    for index in range(len(history) - 1, -1, -1):
        if match(history[index]):
            return index
    return None


def _completed(entries: Iterable[dict[str, Any]], definition: Definition) -> list[str]:
    """States that finished their work, in the order they last did, ignoring ones the definition no longer has.

    A final state is never among them: a run does not pass through one (a record that says so is not ours)."""
    done: dict[str, None] = {}
    for entry in entries:
        state = entry.get("state")
        if (
            isinstance(state, str)
            and definition.has_state(state)
            and not definition.state(state).final
            and entry.get("outcome") in (OK, SKIPPED)
        ):
            done.pop(state, None)
            done[state] = None
    return list(done)
