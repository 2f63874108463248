"""Definition -> a `transitions` machine, and the loop that runs each state's action and fires its outcome.

The loop is the same for every state: run the state's action (under its retry policy); fire `ok` when it succeeds,
or the trigger named after its failure reason. The machine's after-state-change hook turns each transition into a
progress line and the callbacks states.toml declares. Nothing here knows a state by name.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from transitions import EventData, Machine

from provisioner.actions import registry
from provisioner.context import RunContext
from provisioner.definition import Definition, Notify, RetryPolicy, StateDef
from provisioner.errors import StepFailed
from provisioner.flow import OK
from provisioner.journal import Journal
from provisioner.output import log
from provisioner.record import StepOutcome
from provisioner.reporter import PROGRESS, Reporter

# Seconds after the machine starts when callbacks go even though no server is started yet. Past the fast path: a run
# with a quick module starts its server about 0.03 s after its machine starts (benchmarks/README.md), and requests'
# import (~0.1 s of CPU) in the callbacks' thread would slow that. Behind a slow module load the main thread only
# waits, so the import costs it nothing, and the platform hears init_started ~0.1 s sooner than with 0.15 s.
EARLY_RELEASE = 0.05

if TYPE_CHECKING:
    from provisioner.definition import TransitionDef


@dataclass(frozen=True)
class Ending:
    """The final state a machine run reached, and the exit code the definition gives it (not the recorded
    record.Outcome, which also knows runs that were interrupted or stopped)."""

    state: str
    exit_code: int


class _Model:
    """The object `transitions` drives: it gets `state` and `trigger(name, **kwargs)` from the machine."""

    state: str
    trigger: Any


class Runner:
    """Runs one provisioning from a given state to a final state."""

    def __init__(
        self, definition: Definition, ctx: RunContext, reporter: Reporter, journal: Journal, started: float
    ) -> None:
        self.definition = definition
        self.ctx = ctx
        self.reporter = reporter
        self.journal = journal
        self.started = started
        self.model = _Model()
        self.failure: StepFailed | None = None
        # Callbacks of a transition into a final state wait for that state's action: init_completed is only
        # sent once the info file exists.
        self._deferred: list[tuple[Notify, str, str, StepFailed | None]] = []

    def build(self, initial: str) -> Machine:
        return Machine(
            model=self.model,
            initial=initial,
            send_event=True,
            after_state_change=self._on_transition,
            **self.definition.machine_arguments(),
        )

    def run(self, initial: str | None = None, skip: frozenset[str] = frozenset()) -> Ending:
        """Run from `initial` to a final state; states in `skip` (done by an earlier run) pass straight on."""
        start = initial or self.definition.initial
        self.build(start)
        self.reporter.release_after(EARLY_RELEASE)
        self._progress(start)
        while True:
            state = self.definition.state(self.model.state)
            self.journal.enter(state.name)
            if state.name in skip:
                self.journal.leave(StepOutcome.SKIPPED)
                self.model.trigger(OK, error=None)
                continue
            pid_before = self.ctx.pid
            error = self._run_action(state)
            if state.final and error is None:
                self._flush_deferred()  # recorded pending before the state is recorded finished: never lost between
            self.journal.leave(
                StepOutcome.FAILED if error else StepOutcome.OK, error, started_server=self.ctx.pid != pid_before
            )
            if self.ctx.pid is not None or error is not None or state.final:
                # The server is on its way (or will not be): callbacks no longer compete with starting it.
                self.reporter.release()
            if state.final and error is None:
                return self._ending(state)
            self._deferred.clear()
            if error is not None:
                self.failure = error
            self.model.trigger(OK if error is None else error.reason, error=error)

    def _run_action(self, state: StateDef) -> StepFailed | None:
        if state.action is None:
            return None
        action = registry()[state.action]
        started = time.monotonic()
        try:
            action.run(self.ctx)
        except StepFailed as exc:
            policy = state.retry
            if policy is None or exc.reason not in policy.on or policy.attempts < 2:
                return exc
            remaining = policy.deadline - (time.monotonic() - started) - policy.wait
            if remaining <= 0:
                return exc
            log.info("[%6.2fs] %s: %s; trying again", time.monotonic() - self.started, state.name, exc.message)
            time.sleep(policy.wait)  # tenacity makes its first try at once; ours already happened
            try:
                _retrying(policy, remaining)(action.run, self.ctx)
            except StepFailed as again:
                return again
        return None

    def _on_transition(self, event: EventData) -> None:
        assert event.transition is not None, "after_state_change runs for transitions only"
        error: StepFailed | None = event.kwargs.get("error")
        transition = self.definition.transition(event.transition.source, event.event.name)
        assert transition is not None, "the machine only fires declared transitions"
        self._progress(transition.dest, error)
        self._report(transition, error)

    def _report(self, transition: TransitionDef, error: StepFailed | None) -> None:
        dest = transition.dest
        extras = self._extras(dest, error)
        progress_url = self.ctx.settings.endpoint(PROGRESS)
        if progress_url:
            fields = {"status": dest, **({"reason": error.reason} if error else {}), **extras}
            self.reporter.send(PROGRESS, progress_url, fields)
        target = self.definition.state(dest)
        for notify in transition.notify:
            url = self.ctx.settings.endpoint(notify.endpoint)
            if not url:
                continue
            if target.final and target.action is not None:
                self._deferred.append((notify, url, dest, error))
            else:
                self.reporter.send(notify.endpoint, url, _fields(notify, extras))

    def _flush_deferred(self) -> None:
        for notify, url, dest, error in self._deferred:
            self.reporter.send(notify.endpoint, url, _fields(notify, self._extras(dest, error)))
        self._deferred.clear()

    def _extras(self, dest: str, error: StepFailed | None) -> dict[str, str]:
        """Non-secret context for the platform: where the machine is, and the server once there is one."""
        ctx = self.ctx
        extras = {"state": dest}
        if ctx.port is not None:
            extras["port"] = str(ctx.port)
        if ctx.pid is not None:
            extras["pid"] = str(ctx.pid)
        if ctx.handed_over:
            extras["url"] = ctx.url()
            if ctx.certificate is not None:  # for the platform or its proxy to pin
                extras["fingerprint"] = ctx.certificate.fingerprint
        if error is not None:
            extras["message"] = error.message
        if ctx.boot is not None:  # a later boot's: the platform tells it from the first, and from each other
            extras.update(ctx.boot.fields())
        return extras

    def _progress(self, state: str, error: StepFailed | None = None) -> None:
        elapsed = time.monotonic() - self.started
        detail = f" ({error.reason}): {error.message}" if error else ""
        fields = {"event": "state", "state": state, "elapsed": round(elapsed, 3)}
        log.info("[%6.2fs] %s%s", elapsed, state, detail, extra=fields | ({"reason": error.reason} if error else {}))
        if self.ctx.page is not None:
            self.ctx.page.enter(state, *((error.reason, error.summary) if error else ()))

    def _ending(self, state: StateDef) -> Ending:
        elapsed = time.monotonic() - self.started
        if self.failure is None:
            url, pid = self.ctx.url(), self.ctx.pid
            log.info(
                "[%6.2fs] server up at %s (pid %s)", elapsed, url, pid, extra={"event": "ready", "url": url, "pid": pid}
            )
            return Ending(state.name, 0)
        return Ending(state.name, self.definition.exit_code(self.failure.reason))


def _fields(notify: Notify, extras: dict[str, str]) -> dict[str, str]:
    fields = {"status": notify.status}
    if notify.reason:
        fields["reason"] = notify.reason
    return {**fields, **extras}


def _retrying(policy: RetryPolicy, remaining: float) -> Any:
    """Tries 2 to `attempts` of a step whose first try failed, within the `remaining` seconds of its deadline.

    tenacity is imported here only: most runs never retry, and its import costs 40-85 ms at start-up.
    """
    from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_before_delay, wait_exponential

    def retryable(exc: BaseException) -> bool:
        return isinstance(exc, StepFailed) and exc.reason in policy.on

    return Retrying(
        stop=stop_after_attempt(policy.attempts - 1) | stop_before_delay(remaining),
        # The waits go on from the one before the second try: wait * backoff, wait * backoff^2, ... up to max_wait.
        wait=wait_exponential(multiplier=policy.wait * policy.backoff, exp_base=policy.backoff, max=policy.max_wait),
        retry=retry_if_exception(retryable),
        reraise=True,
    )
