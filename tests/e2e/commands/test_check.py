"""The verbs around a run: state, stop, graph and check, through the real CLI."""

from __future__ import annotations

from pathlib import Path

from provisioner import actions
from tests.helpers.cli import cli_env, run_cli
from tests.helpers.constants import CHECKOUT


class TestCheck:
    def test_the_shipped_definition_is_valid(self, reap: Path) -> None:
        run = run_cli(["check"], cli_env(reap))
        assert run.returncode == 0
        assert "ok (8 states" in run.stdout

    def test_every_problem_is_listed_as_path_and_message(self, tmp_path: Path, reap: Path) -> None:
        states = tmp_path / "states.toml"
        shipped = (CHECKOUT / "states.toml").read_text()
        broken = shipped.replace('action = "loading"', 'action = "teleporting"').replace("port_in_use = 13\n", "")
        states.write_text(broken)
        run = run_cli(["check", "--states", str(states)], cli_env(reap))
        assert run.returncode == 3
        first, *problems = run.stderr.splitlines()
        assert first == f"jupyter-init: error: {states} is not a valid definition:"
        known = ", ".join(sorted(actions.reasons()))
        assert problems == [
            f"  states[2].action: unknown action 'teleporting' (known: {known})",
            "  states[3].retry.on: 'port_in_use' is not a declared reason",
            "  transitions[9].trigger: must be 'ok' or a declared reason (found 'port_in_use')",
            "  transitions[9].notify[0].reason: 'port_in_use' is not a declared reason",
        ]
