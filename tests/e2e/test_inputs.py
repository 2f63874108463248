"""Root's own inputs: the token file and the callbacks file, whose URLs stay off every command line."""

from __future__ import annotations

import os
from pathlib import Path

from tests.helpers.cli import cli_env, run_cli, server_execs, traced_cli
from tests.helpers.constants import REAL_JUPYTER, SYSTEM_PATH, TOKEN
from tests.helpers.net import free_port
from tests.helpers.receiver import CallbackServer

PASSWORD, SIGNATURE = "pl4tform-Passw0rd-77", "sig-9d8c7b6a5f4e3d2c"  # distinctive: found anywhere, they leaked


def forms_to(callbacks: CallbackServer, path: str) -> list[dict[str, str]]:
    """What reached `path`, whatever its query."""
    return [received.form for received in callbacks.received if received.path.split("?")[0] == path]


def callbacks_file(directory: Path, callbacks: CallbackServer, **extra: str) -> Path:
    authority = f"platform:{PASSWORD}@"
    urls = {
        "start_url": callbacks.url("/start").replace("//", f"//{authority}", 1) + f"?sig={SIGNATURE}",
        "complete_url": callbacks.url("/complete").replace("//", f"//{authority}", 1) + f"?sig={SIGNATURE}",
        "progress_url": callbacks.url("/progress"),
        **extra,
    }
    path = directory / "callbacks.toml"
    path.write_text("".join(f'{key} = "{value}"\n' for key, value in urls.items()))
    path.chmod(0o600)
    return path


def test_callback_urls_from_a_file_are_on_no_command_line(
    tmp_path: Path, callbacks: CallbackServer, reap: Path
) -> None:
    port = free_port()
    path = callbacks_file(tmp_path, callbacks)
    env = cli_env(reap, path=f"{REAL_JUPYTER.parent}:{SYSTEM_PATH}", JUPYTER_TOKEN=TOKEN)
    traced = traced_cli(
        ["run", "--module", "", "--port", str(port), "--callbacks-file", str(path)], env, tmp_path / "t"
    )
    assert traced.run.returncode == 0, traced.run.stderr
    assert server_execs(traced, port), "the trace holds the server's own command line"
    assert not [line for line in traced.execs if PASSWORD in line or SIGNATURE in line]
    callbacks.wait_for(3)
    assert [form["status"] for form in forms_to(callbacks, "/complete")] == ["init_completed"]
    assert [form["status"] for form in forms_to(callbacks, "/start")] == ["init_started"]
    assert callbacks.forms("/progress")[-1]["status"] == "ready"
    started = next(r for r in callbacks.received if r.path.startswith("/start"))
    assert started.path == f"/start?sig={SIGNATURE}" and PASSWORD not in traced.run.stderr
    assert run_cli(["stop"], cli_env(reap)).returncode == 0


def test_the_file_can_be_named_by_the_environment(tmp_path: Path, callbacks: CallbackServer, reap: Path) -> None:
    path = callbacks_file(tmp_path, callbacks)
    env = cli_env(reap, JUPYTER_TOKEN=TOKEN, PROVISIONER_CALLBACKS_FILE=str(path))
    run = run_cli(["run", "--module", "NotThere"], env)
    assert run.returncode == 11, run.stderr
    callbacks.wait_for(2)
    assert [form["reason"] for form in forms_to(callbacks, "/complete")] == ["module_load_failed"]


def test_a_url_from_the_file_and_the_command_line_both_is_a_usage_error(
    tmp_path: Path, callbacks: CallbackServer, reap: Path
) -> None:
    path = callbacks_file(tmp_path, callbacks)
    args = ["run", "--callbacks-file", str(path), "--start-url", "http://b.example/"]
    run = run_cli(args, cli_env(reap, JUPYTER_TOKEN=TOKEN))
    assert run.returncode == 2 and "START_URL is given more than once" in run.stderr
    assert callbacks.received == [] and not (reap / ".jupyter").exists()


def test_as_root_a_callbacks_file_another_account_can_change_is_refused(
    tmp_path: Path, callbacks: CallbackServer, reap: Path
) -> None:
    path = callbacks_file(tmp_path, callbacks)
    os.chown(path, 65534, 65534)  # nobody's: they could point the callbacks, and the signed bodies, anywhere
    run = run_cli(["run", "--callbacks-file", str(path)], cli_env(reap, JUPYTER_TOKEN=TOKEN))
    assert run.returncode == 2 and f"--callbacks-file: '{path}' is nobody's" in run.stderr
    assert callbacks.received == []
