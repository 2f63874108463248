"""The journal keeps the record (provisioner.record) of a run as it goes; the plans say where a later run starts.

The record is the state file's content (docs/reference/files.md): the state, a history entry per state entered, the
server, and every callback with where it is. It never holds a secret.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from provisioner import server
from provisioner.boot import Boot, boot_id
from provisioner.context import RunContext, log
from provisioner.definition import Definition
from provisioner.errors import StepFailed
from provisioner.output import bounded, redact
from provisioner.record import (
    BOOT_STATE,
    STOPPED_STATE,
    Callback,
    Delivery,
    Failure,
    Outcome,
    Record,
    Server,
    Step,
    StepOutcome,
    now,
)
from provisioner.settings import Settings
from provisioner.store import Store


class Journal:
    """Keeps the record up to date and saves it after every change that matters.

    The machine changes the record in the main thread while callbacks finish, and save it, in the reporter's threads:
    one lock covers every change and every save, so a save never serialises a record half-changed. Nothing is
    rebuilt: each verb changes the entries it is about and keeps every other one as it found it.
    """

    def __init__(self, store: Store | None, previous: Record | None = None, origin: str | None = None) -> None:
        self.store = store
        # The state that started the server a new record takes over from an earlier one: passed through again, it
        # is still the state that started it (resume and a later run look for it).
        self.origin = origin
        self._lock = threading.RLock()
        self.record = previous if previous is not None else Record()
        self._entered_at = 0.0
        self._said: str | None = None  # the last problem saving the record, said once
        self.ctx: RunContext | None = None

    def begin(self, definition: Definition, settings: Settings, ctx: RunContext, boot: Boot | None = None) -> None:
        with self._lock:
            if boot is not None:  # the history says why this run began: the VM booted again
                self.record.boot = boot.count
                stamp = now()
                self.record.history.append(Step(BOOT_STATE, entered=stamp, left=stamp, outcome=StepOutcome.OK))
            self.ctx = ctx
            ctx.record = self.save
            public = settings.public()
            self.record.definition = {"source": definition.source, "digest": definition.digest}
            self.record.settings = public
            self.record.outcome = Outcome.RUNNING
            self.record.failure = None
            self.record.provisioner_pid = os.getpid()

    # The machine's hooks.
    def enter(self, state: str) -> None:
        with self._lock:
            self._entered_at = time.monotonic()
            self.record.state = state
            self.record.history.append(Step(state=state, entered=now()))
            self.save()

    def leave(self, outcome: StepOutcome, error: StepFailed | None = None, started_server: bool = False) -> None:
        with self._lock:
            step = self.record.history[-1]
            step.left, step.outcome = now(), outcome
            step.duration = round(time.monotonic() - self._entered_at, 3)
            if error is not None:
                # A message may quote jupyter.log, which the account's own configuration can make print the token.
                message = bounded(redact(error.message))
                step.reason, step.error = error.reason, message
                self.record.failure = Failure(step.state, error.reason, message)
            adopted = outcome is StepOutcome.SKIPPED and step.state == self.origin and self.record.server is not None
            step.started_server = step.started_server or started_server or adopted
            self.save()

    def interrupted(self, message: str) -> None:
        """Say why the state in progress never finished; it stays unfinished, so that resume runs it again."""
        with self._lock:
            step = self.record.history[-1] if self.record.history else None
            if step is not None and step.outcome is None:
                step.error = message

    def finish(self, outcome: Outcome) -> None:
        with self._lock:
            self.record.outcome = outcome
            self.save()

    def stopped(self, started: float) -> None:
        """`jupyter-init stop` stopped the recorded server: a history entry of its own, and the run's outcome."""
        with self._lock:
            stamp = now()
            self.record.history.append(
                Step(
                    STOPPED_STATE,
                    entered=stamp,
                    left=stamp,
                    duration=round(time.monotonic() - started, 3),
                    outcome=StepOutcome.OK,
                )
            )
            self.record.state, self.record.outcome = STOPPED_STATE, Outcome.STOPPED
            if self.record.server is not None:
                self.record.server.stopped = stamp
            self.save()

    # Callbacks: recorded pending when queued, updated in place by the reporter as they are tried.
    def queued(self, callback: Callback) -> None:
        with self._lock:
            self.record.callbacks.append(callback)
            self.save()

    def holds(self, callback: Callback) -> bool:
        """Whether the record has this callback already: the same endpoint and fields (the facts it reports)."""
        with self._lock:
            return any(c.endpoint == callback.endpoint and c.fields == callback.fields for c in self.record.callbacks)

    def undelivered(self) -> list[Callback]:
        with self._lock:
            return [callback for callback in self.record.callbacks if callback.delivery is not Delivery.DELIVERED]

    def save(self) -> str | None:
        """Write the record as it is now; called by the machine, and by the reporter's threads as callbacks end.

        A record that cannot be written before a server is started makes the run unrecordable: none may start
        after that (the record is the only handle on it), and the run fails saying why. Later, it is a warning. Either
        way it is said once, however often the record is saved again."""
        with self._lock:
            if self.ctx is not None:
                self._note_server(self.ctx)
            self.record.updated = now()
            if self.store is None:
                return None
            problem = self.store.save(self.record)
            if problem is None or problem == self._said:
                return problem
            self._said = problem
            ctx = self.ctx
            if ctx is not None and ctx.server_started is None:
                # No server yet: the run fails output_unwritable on the first problem and says why; no warning too.
                ctx.unrecordable = ctx.unrecordable or problem
            else:
                log.warning("warning: %s", problem)
            return problem

    def _note_server(self, ctx: RunContext) -> None:
        if ctx.port is not None:
            self.record.port = ctx.port
        if ctx.pid is not None:
            recorded = self.record.server
            if recorded is None or recorded.pid != ctx.pid:
                recorded = Server(pid=ctx.pid, start_time=ctx.pid_start, started=now(), boot_id=boot_id())
                if self.record.history and self.record.history[-1].outcome is None:
                    self.record.history[-1].started_server = True  # the state in progress started it
            recorded.port, recorded.unit, recorded.exe = ctx.port, ctx.unit, ctx.pid_exe
            recorded.url = ctx.url() if ctx.handed_over else None
            if ctx.certificate is not None:
                recorded.certfile, recorded.keyfile = str(ctx.certificate.certfile), str(ctx.certificate.keyfile)
                recorded.fingerprint = ctx.certificate.fingerprint
            self.record.server = recorded


def server_alive(record: Record) -> bool:
    """Whether the recorded server still runs: same PID, start time, owner and program (see server.alive)."""
    recorded = record.server
    return recorded is not None and server.alive(recorded.pid, start_time=recorded.start_time, exe=recorded.exe)


@dataclass(frozen=True)
class Plan:
    """Where a resumed run starts, and which states it passes through without running their actions."""

    start: str | None  # None: nothing left to run
    skip: frozenset[str]


def plan_resume(record: Record, definition: Definition, alive: bool) -> Plan:
    """Re-run the state that failed or was interrupted, and the process-local states before it; skip the rest.

    When the recorded server is gone, its state of origin (the one that started it) is where the work resumes.
    """
    starter = _last_index(record.history, lambda step: step.started_server)
    stop_at = _resume_index(record, definition, alive, starter)
    if stop_at is None:
        return Plan(definition.initial, frozenset())
    if stop_at == _NOTHING_LEFT:
        return Plan(None, frozenset())
    return _plan_from(record.history, stop_at, definition, alive and starter == stop_at, alive)


_NOTHING_LEFT = -1


def _resume_index(record: Record, definition: Definition, alive: bool, starter: int | None) -> int | None:
    """The history entry whose state a resumed run does again (len(history): the one after the last), None to start
    over, or _NOTHING_LEFT."""
    history, current, failure = record.history, record.state, record.failure
    if record.outcome is Outcome.STOPPED:  # stopped after it was ready or while it failed: start its server again
        return starter
    if current is None or not definition.has_state(current):
        return None
    if _finished(record, definition):
        if alive or starter is None:
            return _NOTHING_LEFT
        return starter  # ready once, but the server is gone (the VM rebooted)
    if failure is None and history and history[-1].outcome in (StepOutcome.OK, StepOutcome.SKIPPED):
        stop_at: int | None = len(history)  # killed after a state finished and before the next began
    else:
        stop_at = _last_index(
            history,
            lambda step: failure is not None and step.state == failure.state and step.outcome is StepOutcome.FAILED,
        )
        if stop_at is None:  # interrupted: the state entered and never left
            stop_at = _last_index(history, lambda step: step.state == current and step.outcome is None)
    if stop_at is not None and starter is not None and starter < stop_at and not alive:
        stop_at = starter
    return stop_at


def _plan_from(history: list[Step], stop_at: int, definition: Definition, started_it: bool, alive: bool) -> Plan:
    """Skip what finished before `stop_at`, except the process-local states; `started_it`: the entry at `stop_at`
    was interrupted after it started the server that still runs, so that much of its work is done too."""
    starts = [index for index in range(stop_at + 1) if index < len(history) and history[index].started_server]
    # With no server alive, what was done from the first start on (starting, verifying...) was about a server that
    # is gone: only what came before it counts as done.
    completed = _completed(history[: min(starts) if starts and not alive else stop_at], definition)
    if started_it and history[stop_at].outcome is None:
        completed.append(history[stop_at].state)
    rerun = [state for state in completed if definition.state(state).process_local]
    if rerun:
        start: str | None = rerun[0]
    elif stop_at < len(history):
        start = history[stop_at].state
    else:
        # From the state that finished last, passed through again: the callbacks of the transition out of it may
        # not have been queued when the run was killed (the seen ones are not sent twice).
        start = history[-1].state if history else None
    if start is None or not definition.has_state(start):  # a record this definition cannot continue
        return Plan(definition.initial, frozenset())
    return Plan(start, frozenset(completed) - set(rerun))


def origin(record: Record) -> str | None:
    """The state that started the recorded server, if the record says."""
    starter = _last_index(record.history, lambda step: step.started_server)
    return None if starter is None else record.history[starter].state


def plan_adoption(record: Record, definition: Definition) -> Plan | None:
    """A new `run` that finds the recorded server alive and started as it would start one: go through the whole
    machine again, telling the platform as it goes, but pass through the states up to the one that started the server
    (except the process-local ones). None when the record does not say which state started it."""
    starter = _last_index(record.history, lambda step: step.started_server)
    if starter is None or not definition.has_state(record.history[starter].state):
        return None
    completed = [*_completed(record.history[:starter], definition), record.history[starter].state]
    skip = {state for state in completed if not definition.state(state).process_local}
    return Plan(definition.initial, frozenset(skip))


def _finished(record: Record, definition: Definition) -> bool:
    last = record.history[-1] if record.history else None
    return (
        record.failure is None
        and record.state is not None
        and definition.state(record.state).final
        and last is not None
        and last.state == record.state
        and last.outcome is StepOutcome.OK
    )


def _last_index(history: list[Step], match: Callable[[Step], bool]) -> int | None:
    for index in range(len(history) - 1, -1, -1):
        if match(history[index]):
            return index
    return None


def _completed(steps: Iterable[Step], definition: Definition) -> list[str]:
    """States that finished their work, in the order they last did, ignoring ones the definition no longer has.

    A final state is never among them: a run does not pass through one (a record that says so is not ours)."""
    done: dict[str, None] = {}
    for step in steps:
        if (
            definition.has_state(step.state)
            and not definition.state(step.state).final
            and step.outcome in (StepOutcome.OK, StepOutcome.SKIPPED)
        ):
            done.pop(step.state, None)
            done[step.state] = None
    return list(done)
