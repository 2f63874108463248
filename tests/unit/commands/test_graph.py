"""`jupyter-init graph`, in process: every state and transition of a definition drawn, the current one marked."""

from __future__ import annotations

import pytest

from provisioner.commands.graph import graph
from provisioner.errors import UsageError
from tests.helpers.definitions import shipped


def test_dot_draws_every_state_and_transition_and_marks_only_the_current_state() -> None:
    definition = shipped()
    dot = graph(definition, "dot", None)
    assert dot.startswith('digraph "jupyter-init" {')
    for state in definition.states:
        assert f'"{state.name}"' in dot
    assert '"port_check" -> "failed" [label="port_in_use | failed_to_start"];' in dot
    assert "fillcolor" not in dot
    marked = graph(definition, "dot", "verifying")
    assert (
        [line for line in marked.splitlines() if "fillcolor" in line]
        == [line for line in marked.splitlines() if line.strip().startswith('"verifying"') and "fillcolor" in line]
        != []
    )


def test_a_recorded_state_the_definition_does_not_have_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="the recorded state 'teleporting' is not in"):
        graph(shipped(), "dot", "teleporting")
