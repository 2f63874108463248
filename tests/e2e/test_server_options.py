"""Options platforms of this kind ask for: a notebook directory, a base URL behind a proxy, an idle timeout;
and a JSON event log for machines."""

from __future__ import annotations

import http.client
import json
from pathlib import Path

import pytest

from provisioner.actions import starting
from provisioner.context import RunContext
from provisioner.secret import Secret
from provisioner.settings import Settings
from provisioner.values import BadValue, parse_base_url, parse_idle_timeout
from tests.helpers.cli import cli_env, jupyter_pids, run_cli
from tests.helpers.constants import REAL_JUPYTER, TOKEN
from tests.helpers.modules import write_module
from tests.helpers.receiver import CallbackServer


def test_base_urls_are_normalised_and_checked() -> None:
    assert parse_base_url("user/alice") == "/user/alice/"
    assert parse_base_url("/") == "/"
    assert parse_base_url("//a//b/") == "/a/b/"
    for bad in ("http://proxy/x", "/a b/", "/x?y=1", "/50%/", "/x%zz/"):
        with pytest.raises(BadValue):
            parse_base_url(bad)
    # Encoded once, as a browser sends it, and read back from the record the same.
    assert parse_base_url("/ü/Ärger/") == "/%C3%BC/%C3%84rger/" == parse_base_url("/%C3%BC/%C3%84rger/")


def test_a_base_url_beyond_ascii_is_one_path_for_jupyter_the_check_and_the_browser(
    callbacks: CallbackServer, reap: Path
) -> None:
    env = cli_env(reap, path=f"{REAL_JUPYTER.parent}:/usr/bin:/bin", JUPYTER_TOKEN=TOKEN)
    args = ["run", "--module", "", "--port", "auto", "--base-url", "/ü/", "--complete-url", callbacks.url("/c")]
    run = run_cli(args, env, timeout=60)
    assert run.returncode == 0, run.stderr
    info = run.info()
    port = int(str(info["port"]))
    assert f":{port}/%C3%BC/?token=" in str(info["url"])
    assert callbacks.forms("/c")[0]["url"].endswith(f":{port}/%C3%BC/")
    assert "/%C3%BC/?token=" in (run.out / "jupyter_info.txt").read_text()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", f"/%C3%BC/api/contents?token={TOKEN}")  # the path a browser sends for /ü/
        assert connection.getresponse().status == 200
    finally:
        connection.close()
    assert run_cli(["state"], cli_env(reap)).returncode == 0, "the recorded base URL reads back"
    assert run_cli(["stop"], cli_env(reap)).returncode == 0


def test_idle_timeout_is_whole_seconds() -> None:
    assert parse_idle_timeout("3600") == 3600
    for bad in ("-1", "soon", "1.5"):
        with pytest.raises(BadValue):
            parse_idle_timeout(bad)


def test_the_options_become_jupyters_own_settings(tmp_path: Path) -> None:
    settings = Settings(token=Secret(TOKEN), notebook_dir=tmp_path, base_url="/user/alice/", idle_timeout=900)
    ctx = RunContext(settings=settings, jupyter=Path("/x/jupyter-notebook"), port=8008)
    argv = starting.command(ctx)
    assert f"--ServerApp.root_dir={tmp_path}" in argv
    assert "--ServerApp.base_url=/user/alice/" in argv
    assert "--ServerApp.shutdown_no_activity_timeout=900" in argv
    assert "--MappingKernelManager.cull_idle_timeout=900" in argv
    assert "--MappingKernelManager.cull_interval=60" in argv


def test_a_server_behind_a_proxy_path_with_its_own_directory_comes_up(
    tmp_path: Path, callbacks: CallbackServer, reap: Path
) -> None:
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (notebooks / "analysis.ipynb").write_text("{}")
    env = cli_env(reap, path=f"{REAL_JUPYTER.parent}:/usr/bin:/bin", JUPYTER_TOKEN=TOKEN)
    args = ["run", "--module", "", "--port", "auto", "--json-log", "--base-url", "/user/alice/"]
    args += ["--notebook-dir", str(notebooks), "--idle-timeout", "3600", "--complete-url", callbacks.url("/c")]
    run = run_cli(args, env)
    assert run.returncode == 0, run.stderr

    events = [json.loads(line) for line in run.stderr.splitlines()]  # every line is one JSON object
    states = [event["state"] for event in events if event["event"] == "state"]
    assert states == ["idle", "validating", "loading", "port_check", "starting", "verifying", "ready"]
    [ready] = [event for event in events if event["event"] == "ready"]
    assert ready["url"].endswith("/user/alice/")
    assert all(TOKEN not in line for line in run.stderr.splitlines())

    info = json.loads((reap / ".jupyter" / "jupyter_info.json").read_text())
    assert info["url"].endswith(f"/user/alice/?token={TOKEN}")
    assert info["notebook_dir"] == str(notebooks)
    assert "shuts down after 3600 s" in (reap / ".jupyter" / "jupyter_info.txt").read_text()
    assert callbacks.wait_for(1, "/c")[0]["url"].endswith("/user/alice/")

    connection = http.client.HTTPConnection("127.0.0.1", info["port"], timeout=5)
    try:
        connection.request("GET", "/user/alice/api/contents", headers={"Authorization": f"token {TOKEN}"})
        listing = json.loads(connection.getresponse().read())
    finally:
        connection.close()
    assert [item["name"] for item in listing["content"]] == ["analysis.ipynb"]


def test_a_notebook_dir_that_does_not_exist_is_a_usage_error(reap: Path) -> None:
    run = run_cli(["run", "--notebook-dir", str(reap / "nowhere")], cli_env(reap, JUPYTER_TOKEN=TOKEN))
    assert run.returncode == 2
    assert "is not a directory" in run.stderr


def test_jupyterlab_comes_up_with_the_same_token_options_and_checks(callbacks: CallbackServer, reap: Path) -> None:
    env = cli_env(reap, path=f"{REAL_JUPYTER.parent}:/usr/bin:/bin", JUPYTER_TOKEN=TOKEN)
    args = ["run", "--app", "lab", "--module", "", "--port", "auto", "--base-url", "/user/alice/"]
    run = run_cli([*args, "--complete-url", callbacks.url("/c")], env)
    assert run.returncode == 0, run.stderr
    info = json.loads((reap / ".jupyter" / "jupyter_info.json").read_text())
    [pid] = jupyter_pids(reap)
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[1].endswith(b"/jupyter-lab")
    assert [c["status"] for c in callbacks.wait_for(1, "/c")] == ["init_completed"]

    def status(path: str, token: str | None) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", info["port"], timeout=5)
        try:
            headers = {"Authorization": f"token {token}"} if token else {}
            connection.request("GET", path, headers=headers)
            return connection.getresponse().status
        finally:
            connection.close()

    assert status("/user/alice/lab", TOKEN) == 200  # JupyterLab's own page, behind the proxy path
    assert status("/user/alice/api/contents", None) == 403
    assert json.loads(run_cli(["state", "--json"], cli_env(reap)).stdout)["settings"]["app"] == "lab"
    assert (reap / ".jupyter" / "jupyter_info.txt").read_text().startswith("JupyterLab server\n=================\n")
    assert info["app"] == "lab"


def test_a_module_without_jupyterlab_names_the_program_that_is_missing(tmp_path: Path, reap: Path) -> None:
    only_notebook = tmp_path / "bin"
    only_notebook.mkdir()
    (only_notebook / "jupyter-notebook").symlink_to(REAL_JUPYTER)
    modules = tmp_path / "modules"
    modules.mkdir()
    write_module(modules, "JupyterNotebook", f'prepend_path("PATH", "{only_notebook}")\n')
    run = run_cli(["run", "--app", "lab"], cli_env(reap, modules, JUPYTER_TOKEN=TOKEN))
    assert run.returncode == 12, run.stderr
    assert "jupyter-lab is not on PATH after module load JupyterNotebook" in run.stderr
    assert jupyter_pids(reap) == []


def test_an_unknown_app_is_a_usage_error(reap: Path) -> None:
    run = run_cli(["run", "--app", "voila"], cli_env(reap, JUPYTER_TOKEN=TOKEN))
    assert (run.returncode, run.stderr) == (2, "jupyter-init: error: --app: must be one of notebook, lab\n")
