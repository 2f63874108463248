"""--launcher systemd. systemd cannot run here (it is not PID 1), so: the exact command and unit the provisioner
produces, checked by the real `systemd-analyze verify`; the example template unit, checked the same way; and a run
end to end through stand-ins for systemd-run and systemctl that start the real Jupyter server as a unit would."""

from __future__ import annotations

import dataclasses
import json
import pwd
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from provisioner import boot, systemd
from provisioner.values import locate_user
from tests.helpers.cli import cli_env, jupyter_pids, read_state, run_cli
from tests.helpers.constants import REAL_JUPYTER, TOKEN
from tests.helpers.modules import make_bin
from tests.helpers.receiver import CallbackServer

ARGV = ["/opt/jupyter/bin/jupyter-notebook", "--no-browser", "--ip=0.0.0.0", "--port=8008"]


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is not installed (Debian package systemd)")
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True, check=False
    )


@pytest.fixture
def unit(tmp_path: Path) -> systemd.Unit:
    """A unit as root starts it for the account `nobody`, with its environment file in root's own directory."""
    nobody = locate_user("nobody")
    env = {"PATH": "/opt/jupyter/bin:/usr/bin", "ODD": 'a "$b" `c` \\d', "JUPYTER_TOKEN": TOKEN}
    log = tmp_path / "out" / "jupyter.log"
    return systemd.Unit("nobody", nobody, 8008, tuple(ARGV), env, log, tmp_path, tmp_path / "root-only" / "nobody.env")


def test_the_command_runs_the_server_as_the_user_with_the_token_only_in_the_environment_file(
    unit: systemd.Unit,
) -> None:
    unit.env_file.parent.mkdir(mode=0o700)
    systemd.write_env_file(unit)
    command = systemd.run_command(unit)
    assert command[:4] == ["systemd-run", "--quiet", "--collect", "--unit=jupyter-notebook-nobody-8008.service"]
    nobody = pwd.getpwnam("nobody")
    for expected in (
        "--property=NoNewPrivileges=yes",
        f"--property=EnvironmentFile={unit.env_file}",
        f"--property=User={nobody.pw_uid}",
        "--property=KillMode=control-group",
    ):
        assert expected in command
    # No StandardOutput=: systemd would open it as root. A shell running as the user opens the log.
    assert not [part for part in command if "StandardOutput" in part or "StandardError" in part]
    assert command[command.index("--") + 1 :] == ["/bin/sh", "-c", 'exec "$$@" >>"$$0" 2>&1', str(unit.log), *ARGV]
    assert not [part for part in command if TOKEN in part]

    info = unit.env_file.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o400, 0)  # root's, in root's directory: systemd reads it
    text = unit.env_file.read_text()
    assert f'JUPYTER_TOKEN="{TOKEN}"' in text
    assert 'ODD="a \\"\\$b\\" \\`c\\` \\\\d"' in text  # quoted as systemd reads it back


def test_the_log_wrapper_appends_the_servers_output_as_the_shell_that_runs_it(tmp_path: Path) -> None:
    """The ExecStart line, with systemd's $$ read back as $, run by a real shell: the log is opened by it."""
    log = tmp_path / "jupyter.log"
    unit = systemd.Unit("me", None, 1, ("/bin/echo", "served $HOME"), {}, log, tmp_path, tmp_path / "x.env")
    argv = [part.replace("$$", "$") for part in systemd.exec_start(unit)]
    subprocess.run(argv, check=True)
    subprocess.run(argv, check=True)
    assert log.read_text() == "served $HOME\n" * 2


def test_the_unit_it_asks_for_passes_systemd_analyze_verify(unit: systemd.Unit, tmp_path: Path) -> None:
    unit.env_file.parent.mkdir(mode=0o700)
    systemd.write_env_file(unit)
    checked = tmp_path / unit.name
    checked.write_text(systemd.unit_file(dataclasses.replace(unit, argv=("/usr/bin/true", *ARGV[1:]))))
    result = verify(checked)
    assert result.returncode == 0, result.stderr


def test_the_boot_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    (tmp_path / boot.TEMPLATE).write_text(boot.unit_text())
    instance = tmp_path / boot.TEMPLATE.replace("@", "@root")
    instance.symlink_to(boot.TEMPLATE)
    result = verify(instance)
    assert result.returncode == 0, result.stderr


def test_a_broken_unit_fails_verification(tmp_path: Path) -> None:
    broken = tmp_path / "broken.service"
    broken.write_text("[Service]\nExecStart=not/absolute\n")
    assert verify(broken).returncode != 0


# Stand-ins: systemd-run starts the command detached with the unit's environment file, directory and user, as systemd
# would (reading $$ as $), and records its PID and User=; systemctl answers `show --property=MainPID|User --value`
# and `stop` for it.
FAKE_SYSTEMD_RUN = f"""#!{sys.executable}
import json, os, re, subprocess, sys
args = sys.argv[1:]
cut = args.index("--")
options, command = args[:cut], [part.replace("$$", "$") for part in args[cut + 1:]]
props = dict(o[len("--property="):].split("=", 1) for o in options if o.startswith("--property="))
unit = next(o.split("=", 1)[1] for o in options if o.startswith("--unit="))
env = {{}}
for line in open(props["EnvironmentFile"]):
    key, value = line.rstrip("\\n").split("=", 1)
    env[key] = re.sub(r"\\\\(.)", r"\\1", value[1:-1])
user = {{"user": int(props["User"]), "group": int(props["Group"])}} if "User" in props else {{}}
proc = subprocess.Popen(command, env=env, cwd=props["WorkingDirectory"], stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, **user)
record = {{"MainPID": proc.pid, "User": props.get("User", "")}}
open(os.path.join(os.environ["FAKE_SYSTEMD_DIR"], unit), "w").write(json.dumps(record))
"""
FAKE_SYSTEMCTL = f"""#!{sys.executable}
import json, os, signal, sys
args = [a for a in sys.argv[1:] if a != "--user"]
unit = args[-1]
record = json.load(open(os.path.join(os.environ["FAKE_SYSTEMD_DIR"], unit)))
if args[0] == "show":
    print(record[args[1].split("=", 1)[1]])
elif args[0] == "stop":
    os.killpg(record["MainPID"], signal.SIGTERM)
"""


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
