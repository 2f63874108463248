"""The CLI end to end: a real Jupyter server, real Lmod, a real HTTP server receiving the callbacks."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import re
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.cli import (
    VERBS,
    Run,
    Traced,
    cli_env,
    help_of,
    jupyter_pids,
    read_state,
    run_cli,
    server_execs,
    start_cli,
    stop_servers,
    traced_cli,
)
from tests.helpers.constants import MODULE_SECONDS, REAL_JUPYTER, TOKEN
from tests.helpers.definitions import shipped_definition, to_toml
from tests.helpers.modules import make_bin
from tests.helpers.net import free_port
from tests.helpers.receiver import CallbackServer, serving

# What the shared provisioning sends, per URL, in order: every assertion over its callbacks starts from this list, so
# that none passes on callbacks that never came.
EVERY_CALLBACK = {
    "/progress": ["validating", "loading", "port_check", "starting", "verifying", "ready"],
    "/start": ["init_started"],
    "/complete": ["init_completed"],
}


def sent(callbacks: CallbackServer) -> dict[str, list[str]]:
    """The statuses each URL received, in the order it received them."""
    return {path: [form["status"] for form in callbacks.forms(path)] for path in {r.path for r in callbacks.received}}


@dataclass
class Provisioned:
    run: Run
    callbacks: CallbackServer
    port: int
    traced: Traced  # the run and every execve in it, as strace saw it


@pytest.fixture(scope="module")
def provisioned(module_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provisioned]:
    """One real provisioning, shared by the tests that only read what it left: Jupyter comes from an Lmod module,
    the token from the environment (as scripts/jupyter_init.sh passes it), callbacks go to a real server."""
    home = tmp_path_factory.mktemp("home")
    port = free_port()
    with serving() as callbacks:
        env = cli_env(home, module_tree, JUPYTER_TOKEN=TOKEN)
        args = [
            "run",
            "--port",
            str(port),
            "--progress-url",
            callbacks.url("/progress"),
            "--start-url",
            callbacks.url("/start"),
            "--complete-url",
            callbacks.url("/complete"),
        ]
        traced = traced_cli(args, env, tmp_path_factory.mktemp("trace") / "execve")
        callbacks.wait_for(sum(map(len, EVERY_CALLBACK.values())))
        yield Provisioned(traced.run, callbacks, port, traced)
    stop_servers(home)


def get(port: int, path: str, token: str | None) -> tuple[int, str]:
    """GET `path` from the server, with `token` in the Authorization header if given: the status and Location."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path, headers={"Authorization": f"token {token}"} if token else {})
        response = connection.getresponse()
        return response.status, response.getheader("Location", "")
    finally:
        connection.close()


class TestReady:
    def test_exits_zero_when_the_server_is_up(self, provisioned: Provisioned) -> None:
        assert provisioned.run.returncode == 0, provisioned.run.stderr

    def test_the_server_answers_with_the_token_and_refuses_without(self, provisioned: Provisioned) -> None:
        for api in ("/api/status", "/api/contents"):
            assert get(provisioned.port, api, TOKEN)[0] == 200, api
            assert get(provisioned.port, api, None)[0] == 403, api
            assert get(provisioned.port, api, "wrong-token")[0] == 403, api
        # A page sends a browser that has no token to the login page.
        assert get(provisioned.port, "/tree", TOKEN)[0] == 200
        status, location = get(provisioned.port, "/tree", None)
        assert (status, location.split("?")[0]) == (302, "/login")

    def test_the_server_outlives_the_provisioner_in_its_own_session(self, provisioned: Provisioned) -> None:
        pid = int(str(provisioned.run.info()["pid"]))
        os.kill(pid, 0)
        assert os.getsid(pid) == pid

    def test_start_then_complete_callbacks_carry_the_spec_fields(self, provisioned: Provisioned) -> None:
        start = provisioned.callbacks.forms("/start")
        complete = provisioned.callbacks.forms("/complete")
        assert [form["status"] for form in start] == ["init_started"]
        assert [form["status"] for form in complete] == ["init_completed"]
        assert complete[0]["port"] == str(provisioned.port)
        assert complete[0]["url"].endswith(f":{provisioned.port}/")
        assert complete[0]["pid"] == str(provisioned.run.info()["pid"])

    def test_callbacks_are_form_posts(self, provisioned: Provisioned) -> None:
        assert sent(provisioned.callbacks) == EVERY_CALLBACK
        content_types = {received.headers["Content-Type"] for received in provisioned.callbacks.received}
        assert content_types == {"application/x-www-form-urlencoded"}

    def test_init_started_arrives_before_init_completed(self, provisioned: Provisioned) -> None:
        paths = [received.path for received in provisioned.callbacks.received if received.path != "/progress"]
        assert paths == ["/start", "/complete"]

    def test_progress_url_hears_every_state_in_order(self, provisioned: Provisioned) -> None:
        states = [form["status"] for form in provisioned.callbacks.forms("/progress")]
        assert states == ["validating", "loading", "port_check", "starting", "verifying", "ready"]

    def test_stderr_has_one_progress_line_per_state_with_elapsed_time(self, provisioned: Provisioned) -> None:
        lines = [line for line in provisioned.run.stderr.splitlines() if "s] " in line]
        states = [line.split("] ", 1)[1].split()[0] for line in lines]
        assert states[:7] == ["idle", "validating", "loading", "port_check", "starting", "verifying", "ready"]
        assert all(line.startswith("jupyter-init: [") for line in lines)

    def test_info_files_hold_what_the_spec_lists(self, provisioned: Provisioned) -> None:
        info = provisioned.run.info()
        assert info["port"] == provisioned.port
        assert info["token"] == TOKEN
        assert info["url"] == f"http://{info['vm_ip']}:{provisioned.port}/?token={TOKEN}"
        text = (provisioned.run.out / "jupyter_info.txt").read_text()
        for label in ("VM IP:", "Port:", "Token:", "URL:", "PID:", "Started:", "How to connect:", "How to stop:"):
            assert label in text
        assert f"PID:       {info['pid']}" in text

    def test_files_holding_the_token_are_private(self, provisioned: Provisioned) -> None:
        out = provisioned.run.out
        assert stat.S_IMODE(out.stat().st_mode) == 0o700
        for name in ("jupyter_info.txt", "jupyter_info.json", "jupyter.log"):
            assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name

    def test_the_log_holds_the_servers_output(self, provisioned: Provisioned) -> None:
        log = (provisioned.run.out / "jupyter.log").read_text()
        assert "Jupyter Server" in log or "ServerApp" in log

    def test_the_token_is_in_the_argv_of_no_program_any_process_of_the_run_executes(
        self, provisioned: Provisioned
    ) -> None:
        # The trace holds every program's whole argv: the server's own is there, so the trace is not empty of it.
        assert len(server_execs(provisioned.traced, provisioned.port)) == 1, provisioned.traced.execs
        assert [line for line in provisioned.traced.execs if TOKEN in line] == []

    def test_the_token_is_in_no_callback_and_none_of_our_output(self, provisioned: Provisioned) -> None:
        assert sent(provisioned.callbacks) == EVERY_CALLBACK
        assert [received.path for received in provisioned.callbacks.received if TOKEN.encode() in received.body] == []
        assert TOKEN not in provisioned.run.stderr + provisioned.run.stdout
        assert TOKEN not in (provisioned.run.out / "jupyter.log").read_text()

    def test_the_state_dump_shows_the_run_and_never_the_token(self, provisioned: Provisioned) -> None:
        env = cli_env(provisioned.run.home)
        table, dump = run_cli(["state"], env), run_cli(["state", "--json"], env)
        assert (table.returncode, dump.returncode) == (0, 0)
        data = json.loads(dump.stdout)
        assert (data["status"], data["server"]["alive"], data["server"]["port"]) == ("ready", True, provisioned.port)
        history = [(entry["state"], entry["duration"] is not None) for entry in data["history"]]
        assert history == [(state, True) for state in ("idle", *EVERY_CALLBACK["/progress"])]
        assert TOKEN not in table.stdout + dump.stdout + (provisioned.run.out / "provisioner-state.json").read_text()
        assert (provisioned.run.out / "provisioner-token").read_text() == TOKEN

    def test_callbacks_are_signed_with_the_token(self, provisioned: Provisioned) -> None:
        assert sent(provisioned.callbacks) == EVERY_CALLBACK
        for received in provisioned.callbacks.received:
            digest = hmac.new(TOKEN.encode(), received.body, hashlib.sha256).hexdigest()
            assert received.headers["X-Jupyter-Init-Signature"] == f"sha256={digest}"
            assert "timestamp" in received.form

    def test_the_module_environment_reaches_the_server(self, provisioned: Provisioned) -> None:
        pid = provisioned.run.info()["pid"]
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert b"JUPYTER_MODULE_LOADED=yes" in environ
        assert f"JUPYTER_TOKEN={TOKEN}".encode() in environ


def reasons(callbacks: CallbackServer, path: str) -> list[tuple[str, str | None]]:
    return [(form["status"], form.get("reason")) for form in callbacks.wait_for(1, path)]


def urls(callbacks: CallbackServer) -> list[str]:
    return [callbacks.url("/start"), callbacks.url("/complete")]


class TestFailures:
    """Every failure reason reaches the right URL with its own exit code, and leaves nothing running."""

    @pytest.mark.parametrize("token", ["", "   ", "two words", "bad\ntoken", "tab\tinside", "ctrl\x07char"])
    def test_an_unusable_token_fails_no_token_to_the_start_url_unsigned(
        self, token: str, callbacks: CallbackServer, reap: Path
    ) -> None:
        run = run_cli(["run", "--module", "", token, *urls(callbacks)], cli_env(reap))
        assert run.returncode == 10
        assert reasons(callbacks, "/start") == [("failed", "no_token")]
        [received] = callbacks.received
        # docs/reference/callbacks.md: a no_token failure comes unsigned.
        assert [name for name in received.headers if name.lower() == "x-jupyter-init-signature"] == []
        assert set(received.form) == {"status", "reason", "state", "message", "timestamp"}
        assert callbacks.forms("/complete") == []
        assert "Traceback" not in run.stderr
        assert not (run.out / "jupyter.log").exists()

    def test_a_missing_token_fails_no_token(self, callbacks: CallbackServer, reap: Path) -> None:
        run = run_cli(["run", "--start-url", callbacks.url("/start")], cli_env(reap))
        assert run.returncode == 10
        assert reasons(callbacks, "/start") == [("failed", "no_token")]

    def test_an_unknown_module_fails_module_load_failed(
        self, module_tree: Path, callbacks: CallbackServer, reap: Path
    ) -> None:
        run = run_cli(["run", "--module", "NoSuchModule", TOKEN, *urls(callbacks)], cli_env(reap, module_tree))
        assert run.returncode == 11, run.stderr
        assert reasons(callbacks, "/complete") == [("failed", "module_load_failed")]
        assert [form["status"] for form in callbacks.forms("/start")] == ["init_started"]
        assert "NoSuchModule" in run.stderr

    def test_a_module_that_errors_fails_module_load_failed(
        self, module_tree: Path, callbacks: CallbackServer, reap: Path
    ) -> None:
        run = run_cli(["run", "--module", "Broken", TOKEN, *urls(callbacks)], cli_env(reap, module_tree))
        assert run.returncode == 11
        assert "broken on purpose" in run.stderr
        assert reasons(callbacks, "/complete") == [("failed", "module_load_failed")]

    def test_a_module_without_jupyter_fails_jupyter_not_found(
        self, module_tree: Path, callbacks: CallbackServer, reap: Path
    ) -> None:
        run = run_cli(["run", "--module", "NoJupyter", TOKEN, *urls(callbacks)], cli_env(reap, module_tree))
        assert run.returncode == 12, run.stderr
        assert reasons(callbacks, "/complete") == [("failed", "jupyter_not_found")]

    def test_a_port_in_use_fails_port_in_use(self, module_tree: Path, callbacks: CallbackServer, reap: Path) -> None:
        with socket.socket() as taken:
            taken.bind(("0.0.0.0", 0))
            taken.listen()
            port = taken.getsockname()[1]
            run = run_cli(["run", "--port", str(port), TOKEN, *urls(callbacks)], cli_env(reap, module_tree))
        assert run.returncode == 13, run.stderr
        assert reasons(callbacks, "/complete") == [("failed", "port_in_use")]
        assert f"port {port}" in run.stderr

    def test_a_server_that_dies_fails_failed_to_start_with_the_logs_tail(
        self, tmp_path: Path, callbacks: CallbackServer, reap: Path
    ) -> None:
        fake = make_bin(
            tmp_path / "fake", {"jupyter-notebook": "#!/bin/sh\necho 'fatal: the disk is on fire' >&2\nexit 1\n"}
        )
        env = cli_env(reap, path=f"{fake}:/usr/bin:/bin")
        run = run_cli(["run", "--module", "", "--port", str(free_port()), TOKEN, *urls(callbacks)], env)
        assert run.returncode == 14
        assert "the disk is on fire" in run.stderr
        assert "exited with code 1" in run.stderr
        assert reasons(callbacks, "/complete") == [("failed", "failed_to_start")]
        assert "the disk is on fire" in callbacks.forms("/complete")[0]["message"]

    def test_a_server_that_never_answers_fails_at_the_deadline_and_is_stopped(
        self, tmp_path: Path, callbacks: CallbackServer, reap: Path
    ) -> None:
        pidfile = tmp_path / "fake.pid"
        fake = make_bin(tmp_path / "fake", {"jupyter-notebook": f"#!/bin/sh\necho $$ > {pidfile}\nexec sleep 300\n"})
        env = cli_env(reap, path=f"{fake}:/usr/bin:/bin")
        run = run_cli(
            ["run", "--module", "", "--timeout", "1", "--port", str(free_port()), TOKEN, *urls(callbacks)], env
        )
        assert run.returncode == 14
        assert "within 1s" in run.stderr
        assert reasons(callbacks, "/complete") == [("failed", "failed_to_start")]
        pid = int(pidfile.read_text())
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)

    def test_a_server_that_answers_without_the_token_fails_failed_to_start_and_is_stopped(
        self, tmp_path: Path, callbacks: CallbackServer, reap: Path
    ) -> None:
        """Jupyter's own configuration (a site's, an image's) can turn authentication off: never reported ready."""
        config = tmp_path / "jupyter-config"
        config.mkdir()
        (config / "jupyter_server_config.py").write_text('c.IdentityProvider.token = ""\n')
        path = f"{REAL_JUPYTER.parent}:/usr/bin:/bin"
        env = cli_env(reap, path=path, JUPYTER_CONFIG_DIR=str(config), JUPYTER_TOKEN=TOKEN)
        args = ["run", "--module", "", "--port", str(free_port()), "--complete-url", callbacks.url("/complete")]
        run = run_cli(args, env)
        assert run.returncode == 14, run.stderr
        assert "the server answered 200 without the token instead of 403: authentication is off" in run.stderr
        assert reasons(callbacks, "/complete") == [("failed", "failed_to_start")]
        assert jupyter_pids(reap) == []

    def test_an_unreachable_callback_endpoint_does_not_change_the_outcome(self, reap: Path) -> None:
        down = f"http://127.0.0.1:{free_port()}/start"
        run = run_cli(["run", "--module", "", "", down, ""], cli_env(reap))
        assert run.returncode == 10
        assert "not delivered" in run.stderr


class TestBadInput:
    """A user's mistake: one line on stderr, exit 2 or 3, no callback, nothing started."""

    def test_a_path_of_100_kb_is_not_printed_whole(self, reap: Path) -> None:
        huge = reap / ("a" * 100_000)
        run = run_cli(["run", "--module", "", "--output-dir", str(huge)], cli_env(reap, JUPYTER_TOKEN=TOKEN))
        assert run.returncode == 2 and run.stderr.count("\n") == 1
        assert len(run.stderr) < 2200 and "characters left out" in run.stderr

    @pytest.mark.parametrize(
        ("args", "needle"),
        [
            (["--port", "80800"], "--port"),
            (["--port", "http"], "--port"),
            (["--timeout", "-1"], "--timeout"),
            (["--ip", "not-an-ip"], "--ip"),
            (["--bogus"], "unrecognized arguments"),
        ],
    )
    def test_a_bad_option_is_one_line_and_exit_2(
        self, args: list[str], needle: str, callbacks: CallbackServer, reap: Path
    ) -> None:
        run = run_cli(["run", *args, TOKEN, *urls(callbacks)], cli_env(reap))
        assert run.returncode == 2
        assert run.stderr.count("\n") == 1 and needle in run.stderr
        assert TOKEN not in run.stderr
        assert callbacks.forms() == []
        assert not (reap / ".jupyter").exists()

    def test_a_file_where_the_output_directory_should_be_is_output_unwritable(
        self, callbacks: CallbackServer, reap: Path
    ) -> None:
        (reap / "taken").write_text("")
        args = ["run", "--module", "", "--output-dir", str(reap / "taken"), TOKEN, *urls(callbacks)]
        run = run_cli(args, cli_env(reap))
        assert run.returncode == 15
        assert reasons(callbacks, "/start") == [("failed", "output_unwritable")]
        assert "Traceback" not in run.stderr and TOKEN not in run.stderr

    def test_a_read_only_output_directory_is_output_unwritable(
        self, tmpfs: Callable[[str], Path], callbacks: CallbackServer, reap: Path
    ) -> None:
        readonly = tmpfs("ro,size=64k,mode=0755")
        args = ["run", "--module", "", "--output-dir", str(readonly / ".jupyter"), TOKEN, *urls(callbacks)]
        run = run_cli(args, cli_env(reap))
        assert run.returncode == 15
        assert "Read-only file system" in run.stderr
        assert reasons(callbacks, "/start") == [("failed", "output_unwritable")]

    def test_an_unreadable_state_file_is_set_aside_and_the_run_goes_on(
        self, callbacks: CallbackServer, reap: Path
    ) -> None:
        out = reap / ".jupyter"
        out.mkdir(mode=0o700)
        (out / "provisioner-state.json").write_text('{"schema": 1, "state": "verif')
        run = run_cli(["run", "--module", "NotThere", TOKEN, *urls(callbacks)], cli_env(reap))
        assert run.returncode == 11
        assert "not valid JSON" in run.stderr and "moved it to provisioner-state.json.unreadable-" in run.stderr
        [aside] = out.glob("provisioner-state.json.unreadable-*")
        assert aside.read_text() == '{"schema": 1, "state": "verif'
        assert json.loads((out / "provisioner-state.json").read_text())["state"] == "failed"

    @pytest.mark.parametrize("url", ["ftp://example.org/cb", "not a url", "http://"])
    def test_a_bad_url_is_a_usage_error(self, url: str, callbacks: CallbackServer, reap: Path) -> None:
        run = run_cli(["run", TOKEN, url, callbacks.url("/complete")], cli_env(reap))
        assert run.returncode == 2
        assert "START_URL" in run.stderr and url not in run.stderr
        assert callbacks.forms() == []

    def test_an_invalid_definition_lists_its_problems_and_exits_3(self, tmp_path: Path, reap: Path) -> None:
        states = tmp_path / "states.toml"
        states.write_text('schema = 1\ninitial = "idle"\n[[states]]\nname = "idle"\naction = "nope"\n')
        run = run_cli(["run", "--states", str(states)], cli_env(reap, JUPYTER_TOKEN=TOKEN))
        assert run.returncode == 3
        assert "states[0].action: unknown action 'nope'" in run.stderr
        assert "Traceback" not in run.stderr

    def test_a_definition_that_is_not_toml_exits_3(self, tmp_path: Path, reap: Path) -> None:
        states = tmp_path / "states.toml"
        states.write_text("[[states]\n")
        run = run_cli(["run", "--states", str(states)], cli_env(reap, JUPYTER_TOKEN=TOKEN))
        assert run.returncode == 3
        assert "not valid TOML" in run.stderr


class TestCompatibility:
    def test_jupyter_init_takes_the_old_scripts_arguments(self, callbacks: CallbackServer, reap: Path) -> None:
        jupyter_init = Path(sys.executable).with_name("jupyter-init")
        completed = subprocess.run(
            [str(jupyter_init), "", *urls(callbacks)], env=cli_env(reap), capture_output=True, text=True, check=False
        )
        assert completed.returncode == 10
        assert reasons(callbacks, "/start") == [("failed", "no_token")]

    def test_the_token_can_come_from_a_file(self, tmp_path: Path, callbacks: CallbackServer, reap: Path) -> None:
        token_file = tmp_path / "token"
        token_file.write_text(TOKEN + "\n")
        args = ["run", "--module", "NotThere", "--token-file", str(token_file), "--complete-url", callbacks.url("/c")]
        run = run_cli(args, cli_env(reap))
        assert run.returncode == 11  # past validating: the file's token was taken, its newline dropped
        [received] = callbacks.received
        digest = hmac.new(TOKEN.encode(), received.body, hashlib.sha256).hexdigest()
        assert received.headers["X-Jupyter-Init-Signature"] == f"sha256={digest}"
        assert "visible in ps" not in run.stderr

    def test_an_unreadable_token_file_is_a_usage_error(self, reap: Path) -> None:
        run = run_cli(["run", "--token-file", str(reap / "missing")], cli_env(reap))
        assert run.returncode == 2
        assert "--token-file: cannot read" in run.stderr

    def test_an_empty_url_means_no_callback(self, callbacks: CallbackServer, reap: Path) -> None:
        run = run_cli(["run", "--module", "", "", "", callbacks.url("/complete")], cli_env(reap))
        assert run.returncode == 10
        time.sleep(0.2)
        assert callbacks.forms() == []


class TestEnvironmentModules:
    """The same runs through Environment Modules, which exits 0 on a failed load."""

    def test_jupyter_from_an_environment_modules_module_comes_up(
        self, modulecmd_tcl: Path, tcl_module_tree: Path, callbacks: CallbackServer, reap: Path
    ) -> None:
        env = cli_env(reap, tcl_module_tree, MODULES_CMD=str(modulecmd_tcl), JUPYTER_TOKEN=TOKEN)
        run = run_cli(["run", "--port", "auto", "--complete-url", callbacks.url("/complete")], env)
        assert run.returncode == 0, run.stderr
        assert [form["status"] for form in callbacks.wait_for(1, "/complete")] == ["init_completed"]
        pid = run.info()["pid"]
        assert b"JUPYTER_MODULE_LOADED=yes" in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")

    @pytest.mark.parametrize(("module", "code"), [("NoSuchModule", 11), ("Broken", 11), ("NoJupyter", 12)])
    def test_a_failed_load_is_noticed_despite_exit_code_zero(
        self, module: str, code: int, modulecmd_tcl: Path, tcl_module_tree: Path, reap: Path
    ) -> None:
        env = cli_env(reap, tcl_module_tree, MODULES_CMD=str(modulecmd_tcl), JUPYTER_TOKEN=TOKEN)
        run = run_cli(["run", "--module", module], env)
        assert run.returncode == code, run.stderr


def test_on_a_terminal_a_long_state_ticks_its_elapsed_time(tmp_path: Path, reap: Path) -> None:
    """A person watching sees that a slow step is alive; logs and pipes keep one line per event."""
    import pty

    fake = make_bin(tmp_path / "fake", {"jupyter-notebook": "#!/bin/sh\nexec sleep 300\n"})
    env = cli_env(reap, path=f"{fake}:/usr/bin:/bin", JUPYTER_TOKEN=TOKEN, TERM="xterm")
    leader, follower = pty.openpty()
    args = ["run", "--module", "", "--port", str(free_port()), "--timeout", "1.5"]
    process = subprocess.Popen(
        [sys.executable, "-m", "provisioner", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closes when the process exits
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert process.wait(30) == 14
    text = output.decode()
    assert "\rjupyter-init: [" in text and "verifying …" in text
    assert "failed (failed_to_start)" in text


class TestCallbacksInTime:
    """What the platform hears, and when: as it happens, and in the order it happened."""

    def test_init_started_and_loading_arrive_while_a_slow_module_still_loads(
        self, slow_modules: Path, callbacks: CallbackServer, reap: Path
    ) -> None:
        """A cold module on CernVM-FS can take minutes: the platform must not hear nothing all that while."""
        env = cli_env(reap, slow_modules, JUPYTER_TOKEN=TOKEN, **{MODULE_SECONDS: "6"})
        args = ["run", "--module", "Slow", "--port", "auto", "--start-url", callbacks.url("/start")]
        args += ["--complete-url", callbacks.url("/complete"), "--progress-url", callbacks.url("/p")]
        process = start_cli(args, env)
        try:
            assert [form["status"] for form in callbacks.wait_for(1, "/start", timeout=4)] == ["init_started"]
            progress = [form["status"] for form in callbacks.wait_for(2, "/p", timeout=4)]
            assert progress == ["validating", "loading"]
            assert read_state(reap)["state"] == "loading", "heard while the module still loads, not after"
        finally:
            _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err

    def test_with_the_port_taken_init_started_always_arrives_before_failed(
        self, callbacks: CallbackServer, reap: Path, tmp_path: Path
    ) -> None:
        states = tmp_path / "states.toml"  # the shipped machine without the port check's retries: a quick failure
        definition = shipped_definition()
        for state in definition["states"]:
            state.pop("retry", None)
        states.write_text(to_toml(definition))
        with socket.socket() as taken:
            taken.bind(("0.0.0.0", 0))
            taken.listen()
            port = taken.getsockname()[1]
            for round_ in range(10):
                start, complete = callbacks.url(f"/s{round_}"), callbacks.url(f"/c{round_}")
                args = ["run", "--states", str(states), "--module", "", "--port", str(port)]
                run = run_cli(
                    [*args, "--start-url", start, "--complete-url", complete], cli_env(reap, JUPYTER_TOKEN=TOKEN)
                )
                assert run.returncode == 13, run.stderr
                got = [(r.path, r.form["status"]) for r in callbacks.received if r.path[2:] == str(round_)]
                assert got == [(f"/s{round_}", "init_started"), (f"/c{round_}", "failed")]


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_a_description_of_its_own(verb: str) -> None:
    text = subprocess.run(
        [sys.executable, "-m", "provisioner", verb, "--help"], capture_output=True, text=True, check=True
    ).stdout
    usage, description, *_ = text.split("\n\n")  # argparse: usage, then the description, then the arguments
    assert usage.startswith(f"usage: jupyter-init {verb}")
    assert re.match(r"[A-Z].+\.$", " ".join(description.split())), description


def test_every_option_has_help_and_graph_format_says_its_choices() -> None:
    for verb in VERBS:
        text = subprocess.run(
            [sys.executable, "-m", "provisioner", verb, "--help"], capture_output=True, text=True, check=True
        ).stdout
        lines = text.split("options:")[1].splitlines()
        # argparse puts an option's help after it on its line, or on the next line, further in.
        named = [index for index, line in enumerate(lines) if line.startswith("  -")]
        assert len(named) > 1
        bare = [
            lines[index]
            for index in named
            if not re.search(r"\S {2,}\S", lines[index].strip())
            and not (index + 1 < len(lines) and re.match(r" {5,}\S", lines[index + 1]))
        ]
        assert not bare, f"{verb}: options without help: {bare}"
    assert "mermaid (default" in help_of("graph")


def test_stop_refuses_a_grace_that_is_not_a_time(reap: Path) -> None:
    for bad in ("nan", "inf", "-1", "soon"):
        run = run_cli(["stop", "--grace", bad], cli_env(reap))
        assert run.returncode == 2, run.stderr
        assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr


def test_a_reader_that_stops_early_ends_the_command_quietly(reap: Path) -> None:
    """`provisioner graph | head -1`: no traceback, and the shell's code for a closed pipe."""
    command = [sys.executable, "-m", "provisioner", "graph", "--format", "dot"]
    env = cli_env(reap)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()  # before the command writes: its first write finds no reader
        err = process.stderr.read().decode()
        code = process.wait()
    assert (code, err) == (141, "")


def test_an_output_that_cannot_be_written_is_one_line_and_74(reap: Path) -> None:
    with open("/dev/full", "w") as full:
        run = subprocess.run(
            [sys.executable, "-m", "provisioner", "state", "--json"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(reap),
            check=False,
        )
    assert (run.returncode, run.stderr) == (
        74,
        "jupyter-init: error: cannot write the output: No space left on device\n",
    )


def test_stop_takes_its_grace_in_ascii_digits(reap: Path) -> None:
    run = run_cli(["stop", "--grace", "٣"], cli_env(reap))
    assert run.returncode == 2 and "is not a number of seconds" in run.stderr
