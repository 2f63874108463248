"""--launcher systemd. systemd cannot run here (it is not PID 1), so: the exact command and unit the provisioner
produces, checked by the real `systemd-analyze verify`; the example template unit, checked the same way; and a run
end to end through stand-ins for systemd-run and systemctl that start the real Jupyter server as a unit would."""

from __future__ import annotations

import json
import pwd
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from provisioner import systemd
from provisioner.context import RunContext
from provisioner.settings import Secret, Settings, parse_user
from tests.conftest import REAL_JUPYTER, TOKEN, CallbackServer, cli_env, jupyter_pids, make_bin, read_state, run_cli

EXAMPLE_UNIT = Path(__file__).resolve().parent.parent / "examples" / "systemd" / "jupyter-notebook@.service"
ARGV = ["/opt/jupyter/bin/jupyter-notebook", "--no-browser", "--ip=0.0.0.0", "--port=8008"]


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is not installed (Debian package systemd)")
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True, check=False
    )


@pytest.fixture
def ctx(tmp_path: Path) -> RunContext:
    out = tmp_path / "out"
    out.mkdir(mode=0o700)
    nobody = parse_user("nobody", "--user")
    settings = Settings(token=Secret(TOKEN), output_dir=out, home=tmp_path, user=nobody, launcher="systemd")
    return RunContext(settings=settings, port=8008, env={"PATH": "/opt/jupyter/bin:/usr/bin", "ODD": 'a "$b" `c` \\d'})


def test_the_command_runs_the_server_as_the_user_with_the_token_only_in_the_environment_file(ctx: RunContext) -> None:
    env_file = systemd.write_env_file(ctx, ARGV)
    command = systemd.run_command(ctx, ARGV, env_file)
    assert command[:4] == ["systemd-run", "--quiet", "--collect", "--unit=jupyter-notebook-nobody-8008.service"]
    nobody = pwd.getpwnam("nobody")
    for expected in (
        "--property=NoNewPrivileges=yes",
        f"--property=EnvironmentFile={env_file}",
        f"--property=User={nobody.pw_uid}",
        f"--property=StandardOutput=append:{ctx.log_path}",
        "--property=KillMode=control-group",
    ):
        assert expected in command
    assert command[command.index("--") + 1 :] == ARGV
    assert not [part for part in command if TOKEN in part]

    info = env_file.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o400, nobody.pw_uid)
    text = env_file.read_text()
    assert f'JUPYTER_TOKEN="{TOKEN}"' in text
    assert 'ODD="a \\"\\$b\\" \\`c\\` \\\\d"' in text  # quoted as systemd reads it back
    assert 'PROVISIONER_JUPYTER_ARGS="--no-browser --ip=0.0.0.0 --port=8008"' in text


def test_the_unit_it_asks_for_passes_systemd_analyze_verify(ctx: RunContext, tmp_path: Path) -> None:
    env_file = systemd.write_env_file(ctx, ARGV)
    unit = tmp_path / systemd.unit_name(ctx)
    unit.write_text(systemd.unit_file(ctx, ["/usr/bin/true", *ARGV[1:]], env_file))
    result = verify(unit)
    assert result.returncode == 0, result.stderr


def test_the_example_template_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE_UNIT, tmp_path / EXAMPLE_UNIT.name)
    instance = tmp_path / "jupyter-notebook@root.service"
    instance.symlink_to(EXAMPLE_UNIT.name)
    result = verify(instance)
    assert result.returncode == 0, result.stderr


def test_a_broken_unit_fails_verification(tmp_path: Path) -> None:
    broken = tmp_path / "broken.service"
    broken.write_text("[Service]\nExecStart=not/absolute\n")
    assert verify(broken).returncode != 0


# Stand-ins: systemd-run starts the command detached with the unit's environment file, directory and output, as
# systemd would, and records its PID; systemctl answers `show --property=MainPID --value` and `stop` for it.
FAKE_SYSTEMD_RUN = f"""#!{sys.executable}
import os, re, subprocess, sys
args = sys.argv[1:]
cut = args.index("--")
options, command = args[:cut], args[cut + 1:]
props = dict(o[len("--property="):].split("=", 1) for o in options if o.startswith("--property="))
unit = next(o.split("=", 1)[1] for o in options if o.startswith("--unit="))
env = {{}}
for line in open(props["EnvironmentFile"]):
    key, value = line.rstrip("\\n").split("=", 1)
    env[key] = re.sub(r"\\\\(.)", r"\\1", value[1:-1])
log = open(props["StandardOutput"].split(":", 1)[1], "ab")
proc = subprocess.Popen(command, env=env, cwd=props["WorkingDirectory"], stdout=log, stderr=log,
                        stdin=subprocess.DEVNULL, start_new_session=True)
open(os.path.join(os.environ["FAKE_SYSTEMD_DIR"], unit), "w").write(str(proc.pid))
"""
FAKE_SYSTEMCTL = f"""#!{sys.executable}
import os, signal, sys
args = [a for a in sys.argv[1:] if a != "--user"]
unit = args[-1]
pid = int(open(os.path.join(os.environ["FAKE_SYSTEMD_DIR"], unit)).read())
if args[0] == "show":
    print(pid)
elif args[0] == "stop":
    os.killpg(pid, signal.SIGTERM)
"""


def test_a_run_with_the_systemd_launcher_comes_up_and_stops_through_systemctl(
    tmp_path: Path, callbacks: CallbackServer, reap: Path
) -> None:
    fakes = make_bin(tmp_path / "fake-systemd", {"systemd-run": FAKE_SYSTEMD_RUN, "systemctl": FAKE_SYSTEMCTL})
    units = tmp_path / "units"
    units.mkdir()
    path = f"{fakes}:{REAL_JUPYTER.parent}:/usr/bin:/bin"
    env = cli_env(reap, path=path, JUPYTER_TOKEN=TOKEN, FAKE_SYSTEMD_DIR=str(units))
    args = ["run", "--launcher", "systemd", "--module", "", "--port", "auto", "--complete-url", callbacks.url("/c")]
    run = run_cli(args, env)
    assert run.returncode == 0, run.stderr
    assert [form["status"] for form in callbacks.wait_for(1, "/c")] == ["init_completed"]
    [pid] = jupyter_pids(reap)
    state = read_state(reap)
    assert state["server"]["unit"] == f"jupyter-notebook-0-{state['port']}.service"
    assert state["server"]["pid"] == pid
    assert json.loads((reap / ".jupyter" / "jupyter_info.json").read_text())["pid"] == pid

    stopped = run_cli(["stop"], cli_env(reap, path=path, FAKE_SYSTEMD_DIR=str(units)))
    assert stopped.returncode == 0, stopped.stderr
    assert jupyter_pids(reap) == []
