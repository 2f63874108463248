"""Running the machine: from the start, from where a recorded run stopped, or around a server found alive.

Every verb that runs the machine comes here: one path for the record, the callbacks and the signals.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from transitions import MachineError

from provisioner import actions, signing
from provisioner.actions.validating import token_problem
from provisioner.boot import Boot
from provisioner.context import INFO_TXT, RunContext
from provisioner.definition import Definition
from provisioner.errors import Interrupted, UsageError
from provisioner.journal import Journal
from provisioner.machine import Ending, Runner
from provisioner.output import log, redact
from provisioner.record import Outcome, Record
from provisioner.reporter import Reporter
from provisioner.resumeplan import Plan
from provisioner.settings import Settings
from provisioner.store import Store
from provisioner.tls import Certificate

INTERRUPTED_GRACE = 3.0  # seconds callbacks get once a signal asked us to stop
CAUGHT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@dataclass(frozen=True)
class Start:
    """Where a run begins: its plan, the record it continues (None: a new one), and a recorded run whose live server
    a new record keeps, taken over by this run when `alive` (its port and server given to the states passed through)."""

    plan: Plan
    record: Record | None = None
    found: Record | None = None
    alive: bool = False
    origin: str | None = None  # the state that started the server taken over, for a new record to say so
    boot: Boot | None = None  # run by the boot unit: the boot it is for, which its callbacks carry

    @classmethod
    def afresh(cls, definition: Definition, boot: Boot | None = None) -> Start:
        return cls(Plan(definition.initial, frozenset()), boot=boot)


def provision(
    settings: Settings,
    definition: Definition,
    store: Store | None,
    started: float,
    start: Start,
    *,
    unrecordable: str | None = None,
) -> int:
    """Run the machine as `start` says; the exit code is the ending's (or Interrupted is raised)."""
    ctx = RunContext(settings=settings, unrecordable=unrecordable, boot=start.boot)
    journal = Journal(store, start.record, start.origin)
    if start.found is not None:
        _restore(ctx, start.found, start.alive)
        if start.record is None and start.found.server is not None:
            journal.record.server = dataclasses.replace(start.found.server)  # a new record keeps its handle on it
    reporter = Reporter(
        definition.callbacks,
        redact,
        # A token validating refuses is none to sign with: a no_token failure comes unsigned, whatever was given
        # (or signed with the platform's key, which does not depend on it).
        signer=signing.signer(settings, token_signs=token_problem(settings.token, settings.ip) is None),
        on_queue=journal.queued,
        on_done=journal.save,
        seen=journal.holds,
        warm=bool(settings.start_url or settings.complete_url or settings.progress_url),
    )
    journal.begin(definition, settings, ctx, start.boot)
    for callback in journal.undelivered():
        url = settings.endpoint(callback.endpoint)
        if url:
            reporter.resend(callback, url)
    ending: Ending | None = None
    interrupted: Interrupted | None = None
    try:
        with _signals_interrupt():
            ending, interrupted = _machine(definition, ctx, reporter, journal, started=started, start=start)
            if ctx.page is not None and interrupted is None:
                # A failure stays shown a moment, for a tab that polls it; a signal only cuts that short: the run
                # is over and recorded, and ends with its own code.
                with contextlib.suppress(Interrupted):
                    ctx.page.linger()
    finally:
        if ctx.page is not None:
            ctx.page.close()
    if interrupted is not None:
        raise interrupted
    assert ending is not None
    if ending.exit_code == 0:
        log.info("connection details: %s", ctx.out / INFO_TXT)
    return ending.exit_code


def _machine(
    definition: Definition, ctx: RunContext, reporter: Reporter, journal: Journal, *, started: float, start: Start
) -> tuple[Ending | None, Interrupted | None]:
    """Run the machine, recording how it ended: the final state it reached, or the signal that cut it short."""
    ending: Ending | None = None
    interrupted: Interrupted | None = None
    try:
        if start.plan.start is None:
            ending = Ending(str(journal.record.state), 0)
        else:
            if ctx.settings.progress_page and ctx.pid is None:  # not over a server taken over: it holds the port
                _show_progress(ctx, started)
            ending = Runner(definition, ctx, reporter, journal, started).run(start.plan.start, start.plan.skip)
            if ctx.page is not None:
                ctx.page.show_failure()  # while the callbacks go out
    except MachineError as exc:
        # Only a record's history can lead the machine where the definition has no way (it was edited).
        raise UsageError(f"the recorded run cannot be resumed ({exc.value}); start afresh") from None
    except Interrupted as exc:
        interrupted = exc
        journal.interrupted(exc.message)
        _abandon(ctx, exc)
    finally:
        interrupted = _close(reporter, definition, interrupted)
        journal.finish(_final_outcome(ending, interrupted))
    return ending, interrupted


def _show_progress(ctx: RunContext, started: float) -> None:
    """Serve the progress page on the server's port until the server starts; a run goes on without it."""
    from provisioner import page, pageview, proof, tls

    settings = ctx.settings
    assert settings.port is not None, "settings refuse --progress-page with --port auto"

    def certificate() -> tls.Certificate | None:
        ctx.certificate = tls.of_run(settings, ctx.vm_ip)  # the one the server will show: starting keeps it
        return ctx.certificate

    token = settings.token.reveal() if settings.token is not None else None
    tab = pageview.Tab(f"{settings.base_url}api", token, proof.draw())  # base_url is percent-encoded already
    shown = page.ProgressPage(settings.ip, settings.port, None, started, redact, make_certificate=certificate, tab=tab)
    problem = shown.start()
    if problem is not None:  # a certificate that cannot be made or used fails the run in starting, with its callback
        log.warning("warning: no progress page on port %d: %s", settings.port, problem)
        return
    ctx.page = shown


def _close(reporter: Reporter, definition: Definition, interrupted: Interrupted | None) -> Interrupted | None:
    """Wait for the callbacks: the deadline, or a moment once we are being shut down. A signal while waiting ends
    the wait; what is not delivered stays recorded as such, for resume."""
    try:
        reporter.close(definition.callbacks.deadline if interrupted is None else INTERRUPTED_GRACE)
    except Interrupted as exc:  # signals are ignored from here on (see _signals_interrupt)
        log.warning(
            "warning: %s while callbacks were being delivered; `jupyter-init resume` sends the rest", exc.message
        )
        reporter.close(INTERRUPTED_GRACE)
        return interrupted or exc
    return interrupted


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """Turn SIGTERM, SIGINT and SIGHUP into Interrupted in the main thread, so the run can clean up and record."""

    def handler(signum: int, frame: object) -> None:
        for caught in CAUGHT_SIGNALS:  # a second signal while cleaning up must not cut the cleanup short
            signal.signal(caught, signal.SIG_IGN)
        raise Interrupted(signum)

    previous = {caught: signal.signal(caught, handler) for caught in CAUGHT_SIGNALS}
    try:
        yield
    finally:
        for caught, action in previous.items():
            signal.signal(caught, action)


def _abandon(ctx: RunContext, exc: Interrupted) -> None:
    log.warning("warning: %s; the run is recorded and `jupyter-init resume` continues it", exc.message)
    actions.stop_unfinished(ctx)


def _final_outcome(ending: Ending | None, interrupted: Interrupted | None) -> Outcome:
    """The run's recorded outcome from how the machine ended: a final state counts even if a signal then cut the
    callbacks short."""
    if ending is None:
        return Outcome.INTERRUPTED
    return Outcome.READY if ending.exit_code == 0 else Outcome.FAILED


def _restore(ctx: RunContext, record: Record, alive: bool) -> None:
    """Give a run what the states it passes through found: the port, and the server if it still runs."""
    ctx.port = record.port
    if alive and record.server is not None:
        recorded = record.server
        ctx.pid, ctx.pid_start, ctx.unit, ctx.pid_exe = recorded.pid, recorded.start_time, recorded.unit, recorded.exe
        ctx.server_started = time.monotonic()
        ctx.handed_over = record.outcome is Outcome.READY or bool(recorded.url)
        if recorded.fingerprint is not None:
            # The certificate it was started with: its fingerprint is the pin, whatever its files now hold.
            paths = (Path(recorded.certfile or ""), Path(recorded.keyfile or ""))
            ctx.certificate = Certificate(*paths, recorded.fingerprint)
