"""The verbs around a run: state, stop, graph and check, through the real CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from provisioner.exits import REASONS, Status
from tests.helpers.cli import cli_env, run_cli
from tests.helpers.constants import TOKEN
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
