"""The verbs around a run: state, stop, graph and check, through the real CLI."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from provisioner import actions
from provisioner.exits import REASONS, Status
from tests.helpers.cli import cli_env, jupyter_pids, run_cli
from tests.helpers.constants import CHECKOUT, TOKEN
from tests.helpers.net import free_port
from tests.helpers.receiver import CallbackServer


class TestState:
    def test_never_run_exits_with_its_own_code(self, reap: Path) -> None:
        run = run_cli(["state"], cli_env(reap))
        assert run.returncode == Status.NEVER_RUN.exit_code == 21
        assert "status:     never_run" in run.stdout

    def test_no_status_shares_a_code_with_an_error_of_the_command(self) -> None:
        codes = list([status.exit_code for status in Status])
        assert len(set(codes)) == len(codes)
        assert not set(codes) & {1, 2, 3, 4}
        # Nor a run's failure: `state` exiting 10 says `gone`, never `no_token`.
        assert not set(codes) & set(REASONS)

    def test_a_failed_run_exits_failed_with_its_reason_and_no_token(
        self, callbacks: CallbackServer, reap: Path
    ) -> None:
        env = cli_env(reap, JUPYTER_TOKEN=TOKEN)
        run_cli(["run", "--module", "NotThere", "--complete-url", callbacks.url("/complete")], env)
        table = run_cli(["state"], cli_env(reap))
        assert table.returncode == Status.FAILED.exit_code == 22
        assert "failure:    module_load_failed in loading:" in table.stdout
        assert re.search(r"complete\s+failed/module_load_failed\s+delivered \(HTTP 200, 1 attempts\)", table.stdout)
        dump = run_cli(["state", "--json"], cli_env(reap))
        data = json.loads(dump.stdout)
        assert (data["status"], data["state"], data["failure"]["reason"]) == ("failed", "failed", "module_load_failed")
        assert [entry["state"] for entry in data["history"]] == ["idle", "validating", "loading", "failed"]
        assert TOKEN not in table.stdout + dump.stdout
        assert TOKEN not in (reap / ".jupyter" / "provisioner-state.json").read_text()

    @pytest.mark.parametrize("separator", ["\r", "\x85", "\u2028", "\u2029", "\x0b", "\x1c"])
    def test_a_line_end_an_account_wrote_into_its_record_forges_no_line(
        self, callbacks: CallbackServer, reap: Path, separator: str
    ) -> None:
        env = cli_env(reap, JUPYTER_TOKEN=TOKEN)
        run_cli(["run", "--module", "NotThere", "--complete-url", callbacks.url("/complete")], env)
        state = reap / ".jupyter" / "provisioner-state.json"
        record = json.loads(state.read_text())
        record["failure"]["message"] = f"boom{separator}status:     ready"
        state.write_text(json.dumps(record))
        table = run_cli(["state"], cli_env(reap))
        lines = table.stdout.split("\n")
        assert [line for line in lines if line.startswith("status:")] == ["status:     failed"]
        assert len(lines) == len(table.stdout.splitlines()) + 1, "no character but our own line end breaks a line"


class TestStop:
    def test_stop_ends_the_server_frees_its_port_and_is_recorded(self, module_tree: Path, reap: Path) -> None:
        port = free_port()
        run = run_cli(["run", "--port", str(port)], cli_env(reap, module_tree, JUPYTER_TOKEN=TOKEN))
        assert run.returncode == 0, run.stderr
        assert "jupyter-init stop" in (reap / ".jupyter" / "jupyter_info.txt").read_text()
        assert run_cli(["state"], cli_env(reap)).returncode == 0

        stopped = run_cli(["stop"], cli_env(reap))
        assert stopped.returncode == 0, stopped.stderr
        assert f"port {port} is free" in stopped.stdout
        assert jupyter_pids(reap) == []
        with socket.socket() as sock:
            sock.bind(("0.0.0.0", port))
        state = run_cli(["state", "--json"], cli_env(reap))
        assert state.returncode == Status.STOPPED.exit_code == 24
        assert json.loads(state.stdout)["status"] == "stopped"

        again = run_cli(["stop"], cli_env(reap))
        assert again.returncode == 0
        assert "is not running" in again.stdout

    def test_stop_with_nothing_recorded_says_so(self, reap: Path) -> None:
        run = run_cli(["stop"], cli_env(reap))
        assert run.returncode == 0
        assert "nothing to stop" in run.stdout


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


def test_the_read_only_verbs_judge_only_the_settings_that_place_the_output(reap: Path) -> None:
    """A PROVISIONER_* variable meant for a run (a port, a timeout) is not for `state`, `stop` or `graph` to refuse."""
    env = cli_env(reap, PROVISIONER_PORT="x", PROVISIONER_TIMEOUT="0", PROVISIONER_NOTEBOOK_DIR="/no/such/dir")
    assert run_cli(["state"], env).returncode == Status.NEVER_RUN.exit_code
    assert run_cli(["stop"], env).returncode == 0
    assert run_cli(["graph", "--current"], env).returncode == 0
    refused = run_cli(["state"], {**env, "PROVISIONER_OUTPUT_DIR": "~no-such-account-here/x"})
    assert refused.returncode == 2 and refused.stderr.startswith("jupyter-init: error: PROVISIONER_OUTPUT_DIR: ")
