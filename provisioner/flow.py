"""The checks of a definition's states and transitions as a graph: a run that starts in the initial state can reach
every state, has a way on from each, and cannot go round forever.

provisioner.definition judges each table, then asks these checks about what it read, so that `definition.load` still
reports every problem of a file at once. This module sits below it: it reads states and transitions through the two
protocols here and knows nothing of the file.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

from provisioner.errors import Problem, shown

OK = "ok"  # the trigger of a state whose work is done: every state but a final one moves on by it


class State(Protocol):
    """What the graph checks read of a state (definition.StateDef)."""

    @property
    def name(self) -> str: ...

    @property
    def action(self) -> str | None: ...

    @property
    def final(self) -> bool: ...


class Transition(Protocol):
    """What the graph checks read of a transition (definition.TransitionDef)."""

    @property
    def trigger(self) -> str: ...

    @property
    def sources(self) -> tuple[str, ...]: ...

    @property
    def dest(self) -> str: ...


def problems(
    states: Mapping[str, State],
    transitions: Sequence[Transition],
    initial: str,
    action_reasons: Mapping[str, tuple[str, ...]],
    index: Mapping[str, int],
) -> list[Problem]:
    """Check that the machine can run: every step has a way forward and every failure a way out.

    `action_reasons`: the reasons each action can fail with; `index`: each state's place in the file's [[states]],
    for the problems' paths."""
    found = [problem for state in states.values() for problem in _ways_on(state, transitions, action_reasons, index)]
    loop = _loop(states, transitions)
    if loop is not None:
        found.append(Problem(f"states[{index[loop[0]]}]", f"a run could go round forever: {' -> '.join(loop)}"))
    if initial not in states:
        return found
    reached = _reached(initial, transitions)
    found.extend(
        Problem(f"states[{index[name]}]", f"state {shown(name)} cannot be reached from {shown(initial)}")
        for name in states
        if name not in reached
    )
    return found


def _ways_on(
    state: State,
    transitions: Sequence[Transition],
    action_reasons: Mapping[str, tuple[str, ...]],
    index: Mapping[str, int],
) -> Iterator[Problem]:
    path = f"states[{index[state.name]}]"
    has_ok = any(t.trigger == OK and state.name in t.sources for t in transitions)
    if state.final and has_ok:
        yield Problem(path, f"final state {shown(state.name)} has an {OK!r} transition")
    if not state.final and not has_ok:
        yield Problem(path, f"state {shown(state.name)} is not final and has no {OK!r} transition")
    for reason in action_reasons.get(state.action or "", ()):
        if not any(t.trigger == reason and state.name in t.sources for t in transitions):
            yield Problem(
                path,
                f"action {shown(state.action)} can fail with {shown(reason)} but {shown(state.name)} has no such "
                "transition",
            )


def _loop(states: Mapping[str, State], transitions: Sequence[Transition]) -> list[str] | None:
    """The first way round found, from a state back to it; None when there is none.

    A run moves on with every transition: one that can lead back to a state it left could go round forever (a step
    that fails again and again, or none that fails at all). Trying again is what `retry` is for. One loop is enough to
    say: the others usually go through it."""
    following: dict[str, set[str]] = {name: set() for name in states}
    for transition in transitions:
        for source in transition.sources:
            if source in following and transition.dest in states:
                following[source].add(transition.dest)
    done: set[str] = set()
    for start in states:
        if start in done:
            continue
        path: list[str] = []
        stack = [(start, iter(sorted(following[start])))]
        on_path = {start}
        path.append(start)
        while stack:
            name, nexts = stack[-1]
            step = next(nexts, None)
            if step is None:
                stack.pop()
                on_path.discard(path.pop())
                done.add(name)
            elif step in on_path:
                return [*path[path.index(step) :], step]
            elif step not in done:
                stack.append((step, iter(sorted(following[step]))))
                on_path.add(step)
                path.append(step)
    return None


def _reached(initial: str, transitions: Sequence[Transition]) -> set[str]:
    reached = {initial}
    frontier = [initial]
    while frontier:
        current = frontier.pop()
        for transition in transitions:
            if current in transition.sources and transition.dest not in reached:
                reached.add(transition.dest)
                frontier.append(transition.dest)
    return reached
