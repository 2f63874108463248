"""The verbs around a run: state, stop, graph and check, through the real CLI."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers.cli import cli_env, run_cli
from tests.helpers.receiver import CallbackServer


class TestGraph:
    def test_without_current_no_state_is_marked(self, reap: Path) -> None:
        drawn = run_cli(["graph"], cli_env(reap)).stdout
        assert "Class idle s_default" in drawn
        assert not re.search(r"Class \w+ s_active", drawn)
        assert "fillcolor" not in run_cli(["graph", "--format", "dot"], cli_env(reap)).stdout

    def test_dot_lists_every_state_and_transition(self, reap: Path) -> None:
        dot = run_cli(["graph", "--format", "dot"], cli_env(reap)).stdout
        assert dot.startswith('digraph "jupyter-init" {')
        assert '"port_check" -> "failed" [label="port_in_use | failed_to_start"];' in dot
        assert '"ready" [peripheries=2];' in dot

    def test_current_marks_the_recorded_state(self, callbacks: CallbackServer, reap: Path) -> None:
        run_cli(["run", "--module", "", "", callbacks.url("/start"), ""], cli_env(reap))
        drawn = run_cli(["graph", "--current"], cli_env(reap)).stdout
        assert "Class failed s_active" in drawn
        assert "Class idle s_default" in drawn
