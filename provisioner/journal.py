"""The journal keeps the record (provisioner.record) of a run as it goes.

The record is the state file's content (docs/reference/files.md): the state, a history entry per state entered, the
server, and every callback with where it is. It never holds a secret. Where a later run starts, from the record, is
provisioner.resumeplan's.
"""

from __future__ import annotations

import os
import threading
import time

from provisioner.boot import Boot, boot_id
from provisioner.context import RunContext
from provisioner.definition import Definition
from provisioner.errors import StepFailed
from provisioner.output import bounded, log, redact
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
