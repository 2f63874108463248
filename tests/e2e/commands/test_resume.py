"""Resumable runs and idempotent re-runs, end to end with a real Jupyter server and a real callback receiver."""

from __future__ import annotations

import fcntl
import json
import signal
import socket
import time
from pathlib import Path

from tests.helpers.cli import cli_env, jupyter_pids, read_state, run_cli, start_cli
from tests.helpers.constants import CHECKOUT, TOKEN
from tests.helpers.net import free_port
from tests.helpers.receiver import CallbackServer, serving, statuses, urls


def test_a_port_freed_after_port_in_use_is_taken_on_resume(
    module_tree: Path, callbacks: CallbackServer, reap: Path
) -> None:
    env = cli_env(reap, module_tree, JUPYTER_TOKEN=TOKEN)
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        first = run_cli(["run", "--port", str(port), *urls(callbacks)], env)
    assert first.returncode == 13
    assert read_state(reap)["failure"]["reason"] == "port_in_use"

    resumed = run_cli(["resume"], cli_env(reap, module_tree))  # no token, no URLs: all recorded
    assert resumed.returncode == 0, resumed.stderr
    callbacks.wait_for(2, "/complete")
    assert statuses(callbacks, "/start") == ["init_started"]
    assert statuses(callbacks, "/complete") == ["failed/port_in_use", "init_completed"]
    assert "resuming at loading" in resumed.stderr  # the module environment is rebuilt; validating is not re-run
    assert read_state(reap)["server"]["port"] == port
    assert len(jupyter_pids(reap)) == 1


def test_a_run_killed_while_verifying_resumes_with_the_same_server(
    module_tree: Path, callbacks: CallbackServer, reap: Path
) -> None:
    env = cli_env(reap, module_tree, JUPYTER_TOKEN=TOKEN)
    process = start_cli(["run", "--port", "auto", *urls(callbacks)], env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = read_state(reap)
        started_delivered = any(
            c["status"] == "init_started" and c["delivery"] == "delivered" for c in state.get("callbacks", [])
        )
        if state.get("state") == "verifying" and started_delivered:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    [pid] = jupyter_pids(reap)
    assert read_state(reap)["server"]["pid"] == pid

    resumed = run_cli(["resume"], cli_env(reap, module_tree))
    assert resumed.returncode == 0, resumed.stderr
    assert jupyter_pids(reap) == [pid]  # adopted, not started again
    assert statuses(callbacks, "/start") == ["init_started"]
    assert statuses(callbacks, "/complete") == ["init_completed"]
    assert read_state(reap)["server"]["pid"] == pid


def test_an_undelivered_completion_is_delivered_by_resume_once(module_tree: Path, tmp_path: Path, reap: Path) -> None:
    states = tmp_path / "states.toml"  # the shipped definition, with a short callback deadline
    shipped = (CHECKOUT / "states.toml").read_text()
    states.write_text(shipped.replace("attempts = 6\ndeadline = 30.0", "attempts = 2\ndeadline = 1.0"))
    port = free_port()
    complete = f"http://127.0.0.1:{port}/complete"
    env = cli_env(reap, module_tree, JUPYTER_TOKEN=TOKEN)
    first = run_cli(["run", "--states", str(states), "--port", "auto", "--complete-url", complete], env)
    assert first.returncode == 0, first.stderr  # an undeliverable callback does not change the outcome
    [recorded] = [c for c in read_state(reap)["callbacks"] if c["endpoint"] == "complete"]
    assert (recorded["status"], recorded["delivery"]) == ("init_completed", "undelivered")

    with serving(port) as callbacks:
        resumed = run_cli(["resume"], cli_env(reap, module_tree))
        assert resumed.returncode == 0, resumed.stderr
        again = run_cli(["resume"], cli_env(reap, module_tree))
        assert again.returncode == 0, again.stderr
        time.sleep(0.2)
        assert statuses(callbacks, "/complete") == ["init_completed"]
    assert [c["delivery"] for c in read_state(reap)["callbacks"] if c["endpoint"] == "complete"] == ["delivered"]
    assert len(jupyter_pids(reap)) == 1


def test_a_second_run_while_one_holds_the_directory_refuses_at_once(callbacks: CallbackServer, reap: Path) -> None:
    out = reap / ".jupyter"
    out.mkdir(mode=0o700)
    with open(out / "provisioner.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("4242\n")
        held.flush()
        run = run_cli(
            ["run", "--module", "", TOKEN, callbacks.url("/start"), callbacks.url("/complete")], cli_env(reap)
        )
    assert run.returncode == 4
    assert "another jupyter-init run (pid 4242)" in run.stderr
    assert run.stderr.count("error:") == 1 and "Traceback" not in run.stderr
    time.sleep(0.2)
    assert callbacks.forms() == []
    assert not (out / "provisioner-state.json").exists()


def test_resume_with_nothing_recorded_says_so(reap: Path) -> None:
    run = run_cli(["resume"], cli_env(reap))
    assert run.returncode == 2
    assert "nothing to resume" in run.stderr


def test_a_recorded_setting_no_run_could_use_is_one_line_not_a_traceback(module_tree: Path, reap: Path) -> None:
    """The account can edit its record: what `resume` and `stop` read from it is input, checked as the command
    line's is."""
    state_file = reap / ".jupyter" / "provisioner-state.json"
    edits = {
        "notebook_dir": ("~no-such-account-here/work", "resume", "--notebook-dir: '~no-such-account-here/work'"),
        "home": ("/home/\0x", "resume", "HOME: not a path"),
        "ip": (None, "stop", "a recorded setting is not what it must be"),
    }
    for name, (value, verb, said) in edits.items():
        first = run_cli(["run", "--module", "NotThere"], cli_env(reap, module_tree, JUPYTER_TOKEN=TOKEN))
        assert first.returncode == 11, first.stderr
        record = json.loads(state_file.read_text())
        record["settings"][name] = value
        state_file.write_text(json.dumps(record))
        after = run_cli([verb], cli_env(reap, module_tree))
        assert "Traceback" not in after.stderr
        assert said in after.stderr, (name, after.stderr)
        assert after.returncode in (0, 2), (name, after.stderr)
        assert all(line.startswith("jupyter-init: ") for line in after.stderr.splitlines())


def test_a_recorded_token_the_rule_now_refuses_starts_no_server_on_resume(
    module_tree: Path, callbacks: CallbackServer, reap: Path
) -> None:
    """A run recorded under an older rule passed validating with a short token: resume does not run validating again,
    so it must refuse to start a server on 0.0.0.0 guarded by that token."""
    env = cli_env(reap, module_tree, JUPYTER_TOKEN=TOKEN)
    first = run_cli(["run", "--port", str(free_port()), "--module", "NotThere", *urls(callbacks)], env)
    assert first.returncode == 11, first.stderr  # past validating, failed loading
    (reap / ".jupyter" / "provisioner-token").write_text("init")  # as an older version kept it
    before = (reap / ".jupyter" / "provisioner-state.json").read_bytes()
    resumed = run_cli(["resume"], cli_env(reap, module_tree))
    assert (resumed.returncode, resumed.stderr) == (
        2,
        "jupyter-init: error: cannot resume: the token is 4 characters long; at least 16 are needed for a server "
        "listening on 0.0.0.0 (beyond loopback); start afresh (jupyter-init run) with another token\n",
    )
    assert jupyter_pids(reap) == [] and (reap / ".jupyter" / "provisioner-state.json").read_bytes() == before
