"""The verbs around a run: state, stop, graph and check, through the real CLI."""

from __future__ import annotations

from pathlib import Path

from provisioner.exits import Status
from tests.helpers.cli import cli_env, run_cli


def test_the_read_only_verbs_judge_only_the_settings_that_place_the_output(reap: Path) -> None:
    """A PROVISIONER_* variable meant for a run (a port, a timeout) is not for `state`, `stop` or `graph` to refuse."""
    env = cli_env(reap, PROVISIONER_PORT="x", PROVISIONER_TIMEOUT="0", PROVISIONER_NOTEBOOK_DIR="/no/such/dir")
    assert run_cli(["state"], env).returncode == Status.NEVER_RUN.exit_code
    assert run_cli(["stop"], env).returncode == 0
    assert run_cli(["graph", "--current"], env).returncode == 0
    refused = run_cli(["state"], {**env, "PROVISIONER_OUTPUT_DIR": "~no-such-account-here/x"})
    assert refused.returncode == 2 and refused.stderr.startswith("jupyter-init: error: PROVISIONER_OUTPUT_DIR: ")
