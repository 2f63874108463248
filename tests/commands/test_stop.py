"""`provisioner stop`: a history entry of its own, nothing else in the record lost, and no contradiction after."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import TOKEN, CallbackServer, cli_env, jupyter_pids, read_state, run_cli


def test_stop_is_recorded_as_a_step_and_keeps_undelivered_callbacks(
    module_tree: Path, callbacks: CallbackServer, reap: Path
) -> None:
    callbacks.script["/complete"] = [404]
    env = cli_env(reap, module_tree, JUPYTER_TOKEN=TOKEN)
    assert run_cli(["run", "--port", "auto", "--complete-url", callbacks.url("/complete")], env).returncode == 0
    before = read_state(reap)
    [pid] = jupyter_pids(reap)

    stopped = run_cli(["stop"], cli_env(reap))
    assert stopped.returncode == 0, stopped.stderr
    after = read_state(reap)
    assert after["callbacks"] == before["callbacks"]  # the undelivered completion is still there, for resume
    assert after["history"][:-1] == before["history"]
    step = after["history"][-1]
    assert (step["state"], step["outcome"]) == ("stopped", "ok")
    assert (after["state"], after["outcome"]) == ("stopped", "stopped")
    assert after["server"]["pid"] == pid and after["server"]["stopped"]

    table = run_cli(["state"], cli_env(reap))
    assert table.returncode == 9  # stopped
    lines = table.stdout.splitlines()
    assert "status:     stopped" in lines and "state:      stopped" in lines
    history = lines[lines.index("history:") + 1 : lines.index("callbacks:")]
    assert history[-1].split()[1] == "stopped" and history[-1].split()[-1] == "ok"
    assert json.loads(run_cli(["state", "--json"], cli_env(reap)).stdout)["server"]["alive"] is False

    resumed = run_cli(["resume"], cli_env(reap, module_tree))  # starts the server again, delivers what was not
    assert resumed.returncode == 0, resumed.stderr
    assert len(jupyter_pids(reap)) == 1
    assert read_state(reap)["outcome"] == "ready"
