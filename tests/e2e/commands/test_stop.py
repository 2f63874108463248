"""`provisioner stop`: a history entry of its own, nothing else in the record lost, and no contradiction after."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path

from provisioner import server
from provisioner.exits import Status
from tests.helpers.cli import cli_env, jupyter_pids, read_state, run_cli
from tests.helpers.constants import TOKEN
from tests.helpers.net import free_port
from tests.helpers.receiver import CallbackServer


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
    assert table.returncode == Status.STOPPED.exit_code
    lines = table.stdout.splitlines()
    assert "status:     stopped" in lines and "state:      stopped" in lines
    history = lines[lines.index("history:") + 1 : lines.index("callbacks:")]
    assert history[-1].split()[1] == "stopped" and history[-1].split()[-1] == "ok"
    assert json.loads(run_cli(["state", "--json"], cli_env(reap)).stdout)["server"]["alive"] is False

    resumed = run_cli(["resume"], cli_env(reap, module_tree))  # starts the server again, delivers what was not
    assert resumed.returncode == 0, resumed.stderr
    assert len(jupyter_pids(reap)) == 1
    assert read_state(reap)["outcome"] == "ready"


def test_stop_signals_only_a_process_proven_to_be_the_recorded_server(tmp_path: Path, reap: Path) -> None:
    """The record is the account's to edit: pid 1 (killpg(1) is kill(-1), every process), a process that is not
    the leader of its own group, or one with no recorded start time is never signalled."""
    out = reap / ".jupyter"
    out.mkdir(mode=0o700)
    bystander = subprocess.Popen(["sleep", "60"])  # in our process group: killpg(its pid) would miss, or hit us
    leader = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        records = {
            "init": {"pid": 1, "start_time": server.start_time(1)},
            "not a group leader": {"pid": bystander.pid, "start_time": server.start_time(bystander.pid)},
            "no start time": {"pid": leader.pid},
        }
        for what, recorded in records.items():
            record = {"schema": 2, "state": "ready", "outcome": "ready", "history": [], "server": recorded}
            (out / "provisioner-state.json").write_text(json.dumps(record))
            stopped = run_cli(["stop", "--grace", "1"], cli_env(reap))
            assert stopped.returncode == 0, (what, stopped.stderr)
            assert "stopped the server" not in stopped.stdout, what
            assert bystander.poll() is None and leader.poll() is None, what
        # The control: the same leader, with its start time, is the recorded server and is stopped.
        recorded = {"pid": leader.pid, "start_time": server.start_time(leader.pid)}
        record = {"schema": 2, "state": "ready", "outcome": "ready", "history": [], "server": recorded}
        (out / "provisioner-state.json").write_text(json.dumps(record))
        stopped = run_cli(["stop", "--grace", "1"], cli_env(reap))
        assert f"stopped the server (pid {leader.pid})" in stopped.stdout, stopped.stderr
        assert leader.wait(timeout=5) == -signal.SIGTERM
    finally:
        for process in (bystander, leader):
            process.kill()
            process.wait()


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
