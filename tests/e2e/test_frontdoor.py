"""One front door: `jupyter-init` and its verbs. A word is a verb, the old call in its exact shape, or a usage error;
never the token by accident. Its second name, `provisioner`, is the same entry point."""

from __future__ import annotations

import json
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

from provisioner import __version__, exits
from provisioner.exits import VERBS
from provisioner.netinfo import port_free
from tests.helpers.cli import Run, cli_env, jupyter_pids
from tests.helpers.constants import REAL_JUPYTER, SYSTEM_PATH, TOKEN
from tests.helpers.net import free_port
from tests.helpers.receiver import CallbackServer

COMMAND = Path(sys.executable).with_name("jupyter-init")


SECOND_NAME = Path(sys.executable).with_name("provisioner")


@pytest.mark.parametrize("command", [COMMAND, SECOND_NAME])
def test_both_names_print_the_version_and_the_verbs(command: Path, tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    version = subprocess.run([command, "--version"], capture_output=True, text=True, env=env, check=False)
    assert (version.returncode, version.stdout) == (0, f"jupyter-init {__version__}\n")
    shown = subprocess.run([command, "--help"], capture_output=True, text=True, env=env, check=False)
    assert shown.returncode == 0 and shown.stdout.startswith("usage: jupyter-init ")
    for verb in VERBS:
        assert f"\n    {verb} " in shown.stdout, verb  # each verb on a line of its own, with what it is for


def command(args: list[str], env: dict[str, str], user: str | None = None) -> Run:
    """The installed `jupyter-init`, as an operator types it (as `user` through runuser, with the same environment)."""
    prefix = ["runuser", "-u", user, "--"] if user else []
    done = subprocess.run(
        [*prefix, str(COMMAND), *args], env=env, capture_output=True, text=True, timeout=120, check=False, cwd="/"
    )
    return Run(done.returncode, done.stdout, done.stderr, Path(env["HOME"]))


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()


def record(out: Path) -> bytes:
    return (out / "provisioner-state.json").read_bytes()


def test_with_a_live_server_and_the_token_set_every_word_does_its_verb_or_nothing(
    reap: Path, callbacks: CallbackServer
) -> None:
    """The newcomer's first minutes: a server is up, $JUPYTER_TOKEN is still set, and they type words."""
    port = free_port()
    env = cli_env(reap, path=f"{REAL_JUPYTER.parent}:{SYSTEM_PATH}", JUPYTER_TOKEN=TOKEN)
    urls = ["--start-url", callbacks.url("/start"), "--complete-url", callbacks.url("/complete")]
    first = command(["--module", "", "--port", str(port), *urls], env)
    assert first.returncode == 0, first.stderr
    pid = int(str(first.info()["pid"]))
    kept = record(first.out)

    for argv, code in (
        (["state"], 0),
        (["graph"], 0),
        (["check"], 0),
        (["statee"], 2),
        (["stop", "now"], 2),
        (["--port", str(port), "stop"], 2),
        (["run", "resume"], 2),
    ):
        done = command(argv, env)
        assert done.returncode == code, (argv, done.stderr)
        assert "Traceback" not in done.stderr and TOKEN not in done.stdout + done.stderr
        assert alive(pid) and record(first.out) == kept, f"{argv} touched the live server or its record"

    # A token that is a word, on the default bind: refused before anything is stopped or started.
    weak = command(["--module", "", "--port", str(port), *urls], env | {"JUPYTER_TOKEN": "stop"})
    assert weak.returncode == 10, weak.stderr
    assert "the token is 4 characters long; at least 16 are needed" in weak.stderr
    assert alive(pid) and record(first.out) == kept and jupyter_pids(reap) == [pid]
    failed = callbacks.forms("/start")[-1]
    assert (failed["status"], failed["reason"], failed["state"]) == ("failed", "no_token", "failed")
    assert failed["message"] == "the token is 4 characters long; at least 16 are needed for a server listening on " + (
        "0.0.0.0 (beyond loopback)"
    )

    stopped = command(["stop"], env)
    assert stopped.returncode == 0, stopped.stderr
    assert not alive(pid) and port_free("0.0.0.0", port)
    assert command(["state"], env).returncode == exits.ExitCode.STOPPED
    resumed = command(["resume"], env)
    assert resumed.returncode == 0, resumed.stderr
    assert command(["state"], env).returncode == exits.ExitCode.OK
    assert command(["stop"], env).returncode == 0 and jupyter_pids(reap) == []


def test_root_runs_the_old_call_for_an_account_and_the_account_uses_the_verbs(
    researcher: pwd.struct_passwd, reap: Path, callbacks: CallbackServer
) -> None:
    name, home = researcher.pw_name, Path(researcher.pw_dir)
    port = free_port()
    root_env = cli_env(reap, path=f"{REAL_JUPYTER.parent}:{SYSTEM_PATH}")
    old_call = [TOKEN, callbacks.url("/start"), callbacks.url("/complete")]
    first = command([*old_call, "--user", name, "--module", "", "--port", str(port)], root_env)
    assert first.returncode == 0, first.stderr
    assert [form["status"] for form in callbacks.forms()] == ["init_started", "init_completed"]
    info = json.loads((home / ".jupyter" / "jupyter_info.json").read_text())
    pid = int(info["pid"])
    assert Path(f"/proc/{pid}").stat().st_uid == researcher.pw_uid

    # The account, with the token in its environment, types what a newcomer types.
    env = cli_env(home, path=f"{REAL_JUPYTER.parent}:{SYSTEM_PATH}", JUPYTER_TOKEN=TOKEN)
    assert command(["statee"], env, user=name).returncode == 2
    assert command(["state"], env, user=name).returncode == 0 and alive(pid)
    stopped = command(["stop"], env, user=name)
    assert stopped.returncode == 0, stopped.stderr
    assert not alive(pid) and jupyter_pids(home) == []


def test_a_short_token_on_loopback_is_a_warning_and_every_callback_field_arrives_whole(
    reap: Path, callbacks: CallbackServer
) -> None:
    port = free_port()
    env = cli_env(reap, path=f"{REAL_JUPYTER.parent}:{SYSTEM_PATH}", JUPYTER_TOKEN="init")
    urls = ["--start-url", callbacks.url("/start"), "--complete-url", callbacks.url("/complete")]
    done = command(
        ["--module", "", "--ip", "127.0.0.1", "--port", str(port), "--progress-url", callbacks.url("/p"), *urls], env
    )
    assert done.returncode == 0, done.stderr
    assert "warning: the token is 4 characters long; at least 16 are needed; accepted only because" in done.stderr
    assert [form["status"] for form in callbacks.forms("/start")] == ["init_started"]
    assert [form["status"] for form in callbacks.forms("/complete")] == ["init_completed"]
    assert [form["status"] for form in callbacks.forms("/p")] == [
        "validating",
        "loading",
        "port_check",
        "starting",
        "verifying",
        "ready",
    ]
    completed = callbacks.forms("/complete")[0]
    assert completed["url"] == f"http://127.0.0.1:{port}/" and completed["state"] == "ready"
    assert not any("***" in value for form in callbacks.forms() for value in form.values())
    assert "***" not in done.stderr
    assert command(["stop"], env).returncode == 0
