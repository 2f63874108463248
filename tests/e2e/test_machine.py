"""The machine follows the definition it is given: a reordered, extended states.toml runs with no code change."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path

import pytest

from provisioner import actions
from provisioner import definition as definitions
from provisioner.context import RunContext
from provisioner.journal import Journal
from provisioner.machine import Runner
from provisioner.output import redact
from provisioner.reporter import Reporter
from provisioner.secret import Secret
from provisioner.settings import DEFINITION_SETTINGS, Settings
from tests.helpers.cli import cli_env, run_cli
from tests.helpers.constants import REAL_JUPYTER, TOKEN
from tests.helpers.definitions import shipped_definition
from tests.helpers.receiver import CallbackServer

# Port check before loading, and an extra state that runs an existing action (validating) once more.
REORDERED = """
schema = 1
initial = "idle"

[callbacks]
timeout = 5.0
attempts = 6
deadline = 30.0

[reasons]
no_token = 10
module_load_failed = 11
jupyter_not_found = 12
port_in_use = 13
failed_to_start = 14
output_unwritable = 15

[[states]]
name = "idle"
[[states]]
name = "validating"
action = "validating"
[[states]]
name = "port_check"
action = "port_check"
[[states]]
name = "loading"
action = "loading"
[[states]]
name = "double_checking"
action = "validating"
[[states]]
name = "starting"
action = "starting"
[[states]]
name = "verifying"
action = "verifying"
[[states]]
name = "ready"
action = "ready"
final = true
[[states]]
name = "failed"
action = "failed"
final = true

[[transitions]]
trigger = "ok"
source = "idle"
dest = "validating"
[[transitions]]
trigger = "ok"
source = "validating"
dest = "port_check"
notify = [{ endpoint = "start", status = "init_started" }]
[[transitions]]
trigger = "ok"
source = "port_check"
dest = "loading"
[[transitions]]
trigger = "ok"
source = "loading"
dest = "double_checking"
[[transitions]]
trigger = "ok"
source = "double_checking"
dest = "starting"
[[transitions]]
trigger = "ok"
source = "starting"
dest = "verifying"
[[transitions]]
trigger = "ok"
source = "verifying"
dest = "ready"
notify = [{ endpoint = "complete", status = "all_good" }]

[[transitions]]
trigger = "no_token"
source = ["validating", "double_checking"]
dest = "failed"
notify = [{ endpoint = "start", status = "failed", reason = "no_token" }]
[[transitions]]
trigger = "output_unwritable"
source = ["validating", "double_checking", "starting", "ready"]
dest = "failed"
notify = [{ endpoint = "complete", status = "failed", reason = "output_unwritable" }]
[[transitions]]
trigger = "module_load_failed"
source = "loading"
dest = "failed"
[[transitions]]
trigger = "jupyter_not_found"
source = "loading"
dest = "failed"
[[transitions]]
trigger = "port_in_use"
source = ["port_check", "verifying"]
dest = "failed"
notify = [{ endpoint = "complete", status = "failed", reason = "port_in_use" }]
[[transitions]]
trigger = "failed_to_start"
source = ["port_check", "starting", "verifying"]
dest = "failed"
notify = [{ endpoint = "complete", status = "failed", reason = "failed_to_start" }]
"""


def test_a_reordered_definition_with_an_extra_state_runs_without_code_changes(
    tmp_path: Path, callbacks: CallbackServer, reap: Path
) -> None:
    states = tmp_path / "states.toml"
    states.write_text(REORDERED)
    env = cli_env(reap, path=f"{REAL_JUPYTER.parent}:/usr/bin:/bin", JUPYTER_TOKEN=TOKEN)
    args = ["run", "--states", str(states), "--module", "", "--port", "auto", "--progress-url", callbacks.url("/p")]
    run = run_cli([*args, "--start-url", callbacks.url("/start"), "--complete-url", callbacks.url("/complete")], env)
    assert run.returncode == 0, run.stderr
    assert [form["status"] for form in callbacks.wait_for(1, "/complete")] == ["all_good"]
    progress = [form["status"] for form in callbacks.wait_for(7, "/p")]
    assert progress == ["validating", "port_check", "loading", "double_checking", "starting", "verifying", "ready"]


def test_when_the_info_file_cannot_be_written_the_platform_hears_failed_and_the_server_is_stopped(
    callbacks: CallbackServer, reap: Path
) -> None:
    """init_completed waits for the ready action: a failure there sends failed instead, and stops the server."""
    (reap / ".jupyter" / "jupyter_info.txt").mkdir(parents=True)  # a directory where the file must go
    env = cli_env(reap, path=f"{REAL_JUPYTER.parent}:/usr/bin:/bin", JUPYTER_TOKEN=TOKEN)
    args = ["run", "--module", "", "--port", "auto", "--complete-url", callbacks.url("/complete")]
    run = run_cli(args, env)
    assert run.returncode == 15, run.stderr
    assert [(f["status"], f.get("reason")) for f in callbacks.wait_for(1, "/complete")] == [
        ("failed", "output_unwritable")
    ]
    pid = int(callbacks.forms("/complete")[0]["pid"])
    assert not Path(f"/proc/{pid}").exists()


def test_a_port_freed_while_the_step_retries_is_taken(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    """A server still shutting down: port_check's retry policy from states.toml waits for its port."""
    caplog.set_level(logging.INFO, logger="provisioner")
    data = {
        "schema": 1,
        "initial": "idle",
        "reasons": {"port_in_use": 13, "failed_to_start": 14},
        "callbacks": shipped_definition()["callbacks"],
        "states": [
            {"name": "idle"},
            {"name": "port_check", "action": "port_check", "retry": shipped_definition()["states"][3]["retry"]},
            {"name": "done", "final": True},
            {"name": "failed", "final": True},
        ],
        "transitions": [
            {"trigger": "ok", "source": "idle", "dest": "port_check"},
            {"trigger": "ok", "source": "port_check", "dest": "done"},
            {"trigger": "port_in_use", "source": "port_check", "dest": "failed"},
            {"trigger": "failed_to_start", "source": "port_check", "dest": "failed"},
        ],
    }
    definition = definitions.parse(data, actions.reasons(), DEFINITION_SETTINGS, source="test")
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    threading.Timer(0.5, holder.close).start()
    ctx = RunContext(settings=Settings(token=Secret(TOKEN), ip="127.0.0.1", port=port, home=tmp_path))
    reporter = Reporter(definition.callbacks, redact)
    outcome = Runner(definition, ctx, reporter, Journal(None), time.monotonic()).run()
    assert (outcome.state, outcome.exit_code) == ("done", 0)
    assert ctx.port == port
    assert "trying again" in caplog.text
