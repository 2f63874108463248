"""--launcher systemd. systemd cannot run here (it is not PID 1), so: the exact command and unit the provisioner
produces, checked by the real `systemd-analyze verify`; the example template unit, checked the same way; and a run
end to end through stand-ins for systemd-run and systemctl that start the real Jupyter server as a unit would."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

from provisioner import systemd
from tests.helpers.cli import cli_env, jupyter_pids, read_state, run_cli
from tests.helpers.constants import REAL_JUPYTER, TOKEN
from tests.helpers.modules import make_bin
from tests.helpers.receiver import CallbackServer
from tests.helpers.systemd import FAKE_SYSTEMCTL, FAKE_SYSTEMD_RUN


def test_the_log_wrapper_appends_the_servers_output_as_the_shell_that_runs_it(tmp_path: Path) -> None:
    """The ExecStart line, with systemd's $$ read back as $, run by a real shell: the log is opened by it."""
    log = tmp_path / "jupyter.log"
    unit = systemd.Unit("me", None, 1, ("/bin/echo", "served $HOME"), {}, log, tmp_path, tmp_path / "x.env")
    argv = [part.replace("$$", "$") for part in systemd.exec_start(unit)]
    subprocess.run(argv, check=True)
    subprocess.run(argv, check=True)
    assert log.read_text() == "served $HOME\n" * 2


def test_a_run_with_the_systemd_launcher_comes_up_and_stops_through_systemctl(
    tmp_path: Path, callbacks: CallbackServer, reap: Path
) -> None:
    fakes = make_bin(tmp_path / "fake-systemd", {"systemd-run": FAKE_SYSTEMD_RUN, "systemctl": FAKE_SYSTEMCTL})
    units = tmp_path / "units"
    units.mkdir()
    path = f"{fakes}:{REAL_JUPYTER.parent}:/usr/bin:/bin"
    system_dir = tmp_path / "var-lib-provisioner"
    env = cli_env(
        reap, path=path, JUPYTER_TOKEN=TOKEN, FAKE_SYSTEMD_DIR=str(units), PROVISIONER_SYSTEM_DIR=str(system_dir)
    )
    args = ["run", "--launcher", "systemd", "--module", "", "--port", "auto", "--complete-url", callbacks.url("/c")]
    run = run_cli(args, env)
    assert run.returncode == 0, run.stderr
    assert [form["status"] for form in callbacks.wait_for(1, "/c")] == ["init_completed"]
    [pid] = jupyter_pids(reap)
    state = read_state(reap)
    assert state["server"]["unit"] == f"jupyter-notebook-0-{state['port']}.service"
    assert state["server"]["pid"] == pid
    assert json.loads((reap / ".jupyter" / "jupyter_info.json").read_text())["pid"] == pid
    assert (reap / ".jupyter" / "jupyter.log").read_text().count("Jupyter Server") >= 1  # the wrapper's doing
    env_file = system_dir / "0.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o400 and stat.S_IMODE(system_dir.stat().st_mode) == 0o700

    stopped = run_cli(["stop"], cli_env(reap, path=path, FAKE_SYSTEMD_DIR=str(units)))
    assert stopped.returncode == 0, stopped.stderr
    assert jupyter_pids(reap) == []


def test_a_systemd_run_that_fails_is_one_line_in_the_callback_the_record_and_stderr(
    tmp_path: Path, callbacks: CallbackServer, reap: Path
) -> None:
    """systemd-run's complaint spans lines; the failure's `message` is documented as one. A stand-in fails on demand,
    as the real systemd-run cannot."""
    complaint = "Failed to start transient service unit:\nUnit jupyter-notebook.service already exists.\n"
    fakes = make_bin(tmp_path / "fake-systemd", {"systemd-run": f"#!/bin/sh\nprintf '{complaint}' >&2\nexit 1\n"})
    env = cli_env(
        reap,
        path=f"{fakes}:{REAL_JUPYTER.parent}:/usr/bin:/bin",
        JUPYTER_TOKEN=TOKEN,
        PROVISIONER_SYSTEM_DIR=str(tmp_path / "var-lib-provisioner"),
    )
    args = ["run", "--launcher", "systemd", "--module", "", "--port", "auto", "--complete-url", callbacks.url("/c")]
    run = run_cli(args, env)
    assert run.returncode == 14, run.stderr
    message = (
        "cannot start a systemd unit: systemd-run failed: Failed to start transient service unit: "
        "Unit jupyter-notebook.service already exists."
    )
    [form] = callbacks.wait_for(1, "/c")
    assert (form["reason"], form["message"]) == ("failed_to_start", message)
    record = json.loads(run_cli(["state", "--json"], cli_env(reap)).stdout)
    assert record["failure"]["message"] == message
    assert [step["error"] for step in record["history"] if step["reason"]] == [message]
    [said] = [line for line in run.stderr.splitlines() if "(failed_to_start)" in line]
    assert said.endswith(f"(failed_to_start): {message}")
    assert jupyter_pids(reap) == []
