"""Where a later run starts, from the record an earlier one left (provisioner.record).

`resume` goes on from where a run stopped, failed or was killed; a repeated `run` that finds the recorded server alive
adopts it. Either way a plan names the state to start in and the states to pass through without running their
actions. What a plan may skip depends on whether the recorded server still runs, so it is asked here too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from provisioner import server
from provisioner.definition import Definition
from provisioner.record import Outcome, Record, Step, StepOutcome


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
