"""Every Python from 3.9 up that the machine offers, as research-cloud images ship them: the wheel installs into a
fresh venv, and `…/bin/jupyter-init --module ''`, run by its full path without the venv on PATH (as cloud-init's
runcmd runs it), brings a real server up end to end: token, callbacks, info file, stop."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from provisioner.probe import probe
from provisioner.server import alive
from tests.helpers.cli import cli_env
from tests.helpers.constants import SYSTEM_PATH, TOKEN
from tests.helpers.pythons import NEWEST, OLDEST, interpreters
from tests.helpers.receiver import CallbackServer

PYTHONS = interpreters()


def test_the_running_python_is_among_those_checked() -> None:
    assert platform.python_version() in PYTHONS
    assert OLDEST <= sys.version_info[:2] <= NEWEST


@pytest.mark.parametrize("version", list(PYTHONS))
def test_the_wheel_brings_a_server_up_from_its_own_venv(
    version: str, wheels: Path, tmp_path: Path, callbacks: CallbackServer, reap: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([str(PYTHONS[version]), "-m", "venv", "--upgrade-deps", str(venv)], check=True, capture_output=True)
    [wheel] = wheels.glob("jupyter_init-*.whl")
    installed = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", f"{wheel}[notebook]"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr

    env = cli_env(reap, path=SYSTEM_PATH, JUPYTER_TOKEN=TOKEN)  # no venv on PATH, no module system set up
    urls = ["--start-url", callbacks.url("/start"), "--complete-url", callbacks.url("/complete")]
    run = subprocess.run(
        [str(venv / "bin" / "jupyter-init"), "--module", "", "--port", "auto", *urls],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert f"using {venv / 'bin' / 'jupyter-notebook'}" in run.stderr  # the log names the Jupyter it used
    assert [f["status"] for f in callbacks.wait_for(1, "/start")] == ["init_started"]
    assert [f["status"] for f in callbacks.wait_for(1, "/complete")] == ["init_completed"]
    info = json.loads((reap / ".jupyter" / "jupyter_info.json").read_text())
    assert info["token"] == TOKEN
    assert probe("127.0.0.1", info["port"], TOKEN) == 200
    assert probe("127.0.0.1", info["port"], None) == 403
    assert str(venv) in Path(f"/proc/{info['pid']}/cmdline").read_text()  # the venv's own server

    stopped = subprocess.run(
        [str(venv / "bin" / "jupyter-init"), "stop"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert stopped.returncode == 0, stopped.stderr
    assert not alive(info["pid"])
