"""scripts/jupyter_init.sh as the deployment runs it: `bash -lc 'jupyter_init.sh TOKEN START_URL COMPLETE_URL'`."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.cli import cli_env, cmdlines
from tests.helpers.constants import SCRIPT, TOKEN
from tests.helpers.receiver import CallbackServer

PROVISIONER = Path(sys.executable).with_name("jupyter-init")


def test_the_deployed_login_shell_line_brings_a_server_up_through_lmod(
    module_tree: Path, callbacks: CallbackServer, reap: Path
) -> None:
    line = shlex.join([str(SCRIPT), TOKEN, callbacks.url("/start"), callbacks.url("/complete")])
    # A login shell, as `su - USER -c "bash -lc '...'"` gives: /etc/profile sets up Lmod and resets PATH.
    env = cli_env(reap, module_tree, PROVISIONER=str(PROVISIONER), PROVISIONER_PORT="auto")
    process = subprocess.Popen(
        ["bash", "-lc", line], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    seen: list[str] = []
    while process.poll() is None:
        seen.extend(cmdlines())
        time.sleep(0.1)
    stdout, stderr = process.communicate()
    assert process.returncode == 0, stderr
    assert [form["status"] for form in callbacks.wait_for(1, "/complete")] == ["init_completed"]
    assert [form["status"] for form in callbacks.forms("/start")] == ["init_started"]
    port = callbacks.forms("/complete")[0]["port"]
    assert port != "8008" and int(port) > 0  # PROVISIONER_PORT=auto reached the provisioner through the layers
    # The only command line with the token is the deployment's own `bash -lc '...'`, which we do not control.
    ours = [cmd for cmd in seen if not cmd.startswith("bash -lc")]
    assert ours and not [cmd for cmd in ours if TOKEN in cmd]
    assert TOKEN not in stdout + stderr


def test_without_a_provisioner_it_says_so_and_exits_127(tmp_path: Path, reap: Path) -> None:
    lonely = tmp_path / "jupyter_init.sh"
    shutil.copy(SCRIPT, lonely)
    completed = subprocess.run(
        ["/bin/bash", str(lonely), TOKEN],
        env=cli_env(reap, path="/nonexistent"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 127
    assert "not installed" in completed.stderr


@pytest.mark.parametrize("asked", ["--help", "-h"])
def test_asking_the_drop_in_for_help_is_not_a_token(asked: str, reap: Path) -> None:
    completed = subprocess.run(
        ["/bin/bash", str(SCRIPT), asked], env=cli_env(reap), capture_output=True, text=True, check=False
    )
    assert (completed.returncode, completed.stderr) == (0, "")
    assert completed.stdout.startswith("usage: jupyter_init.sh TOKEN [START_URL] [COMPLETE_URL]")
    assert not (reap / ".jupyter").exists()
