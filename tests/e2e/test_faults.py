"""Faults during a run: signals, a port lost in a race, a full disk, callback endpoints that misbehave."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from provisioner.actions import ready
from provisioner.context import RunContext
from provisioner.errors import StepFailed
from provisioner.files import write_private
from provisioner.record import Record
from provisioner.secret import Secret
from provisioner.settings import Settings
from provisioner.store import Store
from tests.helpers.cli import cli_env, jupyter_pids, read_state, run_cli, start_cli
from tests.helpers.constants import CHECKOUT, REAL_JUPYTER, TOKEN
from tests.helpers.definitions import shipped_definition, to_toml
from tests.helpers.modules import make_bin
from tests.helpers.net import free_port
from tests.helpers.receiver import CallbackServer

SHIPPED = (CHECKOUT / "states.toml").read_text()


def wait_for_state(home: Path, state: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while read_state(home).get("state") != state:
        assert time.monotonic() < deadline, f"never reached {state}: {read_state(home)}"
        time.sleep(0.01)


class TestSignals:
    def test_sigterm_while_verifying_stops_the_server_records_and_resume_finishes(
        self, module_tree: Path, callbacks: CallbackServer, reap: Path
    ) -> None:
        env = cli_env(reap, module_tree, JUPYTER_TOKEN=TOKEN)
        process = start_cli(["run", "--port", "auto", "--complete-url", callbacks.url("/complete")], env)
        wait_for_state(reap, "verifying")
        second = run_cli(["run", "--port", "auto", "--complete-url", callbacks.url("/complete")], env)
        assert second.returncode == 4  # two runs at once: the second refuses, starting nothing
        assert "another jupyter-init run" in second.stderr
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 128 + signal.SIGTERM
        assert "interrupted by SIGTERM" in stderr and "Traceback" not in stderr
        assert jupyter_pids(reap) == []  # not handed over, so stopped
        state = read_state(reap)
        assert (state["outcome"], state["state"]) == ("interrupted", "verifying")
        assert state["history"][-1]["error"] == "interrupted by SIGTERM"
        assert callbacks.forms("/complete") == []

        resumed = run_cli(["resume"], cli_env(reap, module_tree))
        assert resumed.returncode == 0, resumed.stderr
        assert len(jupyter_pids(reap)) == 1
        assert [form["status"] for form in callbacks.forms("/complete")] == ["init_completed"]

    @pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP])
    def test_sigint_or_sighup_stops_a_server_that_never_answered(
        self, signum: signal.Signals, tmp_path: Path, reap: Path
    ) -> None:
        pidfile = tmp_path / "fake.pid"
        fake = make_bin(tmp_path / "fake", {"jupyter-notebook": f"#!/bin/sh\necho $$ > {pidfile}\nexec sleep 300\n"})
        env = cli_env(reap, path=f"{fake}:/usr/bin:/bin", JUPYTER_TOKEN=TOKEN)
        process = start_cli(["run", "--module", "", "--port", str(free_port())], env)
        wait_for_state(reap, "verifying")
        process.send_signal(signum)
        process.communicate(timeout=60)
        assert process.returncode == 128 + signum
        assert read_state(reap)["outcome"] == "interrupted"
        with pytest.raises(ProcessLookupError):
            os.kill(int(pidfile.read_text()), 0)


class TestRaces:
    def test_a_port_taken_after_the_check_fails_and_is_never_reported_ready_elsewhere(
        self, tmp_path: Path, callbacks: CallbackServer, reap: Path
    ) -> None:
        """Without port_check in the definition the race is certain: Jupyter meets a taken port and must not move."""
        data = shipped_definition()
        data["states"] = [state for state in data["states"] if state["name"] != "port_check"]
        data["transitions"] = [t for t in data["transitions"] if t["source"] != "port_check"]
        for transition in data["transitions"]:
            if transition["dest"] == "port_check":
                transition["dest"] = "starting"
            if isinstance(transition["source"], list):
                transition["source"] = [source for source in transition["source"] if source != "port_check"]
        states = tmp_path / "states.toml"
        states.write_text(to_toml(data))
        env = cli_env(reap, path=f"{REAL_JUPYTER.parent}:/usr/bin:/bin", JUPYTER_TOKEN=TOKEN)
        with socket.socket() as taken:
            taken.bind(("0.0.0.0", 0))
            taken.listen()
            port = taken.getsockname()[1]
            args = ["run", "--states", str(states), "--module", "", "--port", str(port)]
            run = run_cli([*args, "--complete-url", callbacks.url("/complete")], env)
        assert "port_check" not in run.stderr  # the check really was left out
        assert run.returncode == 13, run.stderr
        assert [(f["status"], f["reason"]) for f in callbacks.wait_for(1, "/complete")] == [("failed", "port_in_use")]
        assert not (reap / ".jupyter" / "jupyter_info.txt").exists()


@pytest.fixture
def full_disk(tmpfs: Callable[[str], Path]) -> Path:
    """A 64 KiB tmpfs, to be filled up: every write that needs a new block then fails with ENOSPC."""
    return tmpfs("size=64k,mode=0700")


def fill(directory: Path) -> None:
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, b"x" * 4096):
            pass
    except OSError:
        pass  # ENOSPC: full
    finally:
        os.close(fd)


class TestFullDisk:
    def test_a_file_written_on_a_full_disk_is_the_old_one_or_nothing(self, full_disk: Path) -> None:
        target = full_disk / "jupyter_info.txt"
        target.write_text("the old connection details\n")
        fill(full_disk)
        with pytest.raises(OSError):
            write_private(target, "new details " * 2000)
        assert target.read_text() == "the old connection details\n"
        assert [p.name for p in full_disk.iterdir() if p.name.endswith(".tmp")] == []

    def test_the_ready_action_fails_clearly_and_hands_nothing_over(self, full_disk: Path) -> None:
        fill(full_disk)
        settings = Settings(token=Secret(TOKEN), home=full_disk, output_dir=full_disk)
        ctx = RunContext(settings=settings, port=8008, pid=4242)
        with pytest.raises(StepFailed) as caught:
            ready.run(ctx)
        assert caught.value.reason == "output_unwritable"
        assert "No space left on device" in caught.value.message
        assert not ctx.handed_over
        assert not (full_disk / "jupyter_info.txt").exists()

    def test_a_run_on_a_full_disk_fails_output_unwritable_says_so_once_and_records_it(
        self, full_disk: Path, callbacks: CallbackServer, reap: Path
    ) -> None:
        env = cli_env(reap, path=f"{REAL_JUPYTER.parent}:/usr/bin:/bin", JUPYTER_TOKEN=TOKEN)
        args = ["run", "--module", "", "--port", "auto", "--output-dir", str(full_disk)]
        args += ["--start-url", callbacks.url("/start"), "--complete-url", callbacks.url("/complete")]
        assert run_cli(args, env).returncode == 0
        where = ["--output-dir", str(full_disk)]
        assert run_cli(["stop", *where], env).returncode == 0
        fill(full_disk)

        run = run_cli(args, env)
        assert run.returncode == 15, run.stderr
        assert run.stderr.count("No space left on device") == 1, run.stderr
        assert jupyter_pids(reap) == []
        assert callbacks.wait_for(3, "/start")[-1]["reason"] == "output_unwritable"
        dump = json.loads(run_cli(["state", "--json", *where], env).stdout)
        assert (dump["status"], dump["failure"]["reason"]) == ("failed", "output_unwritable")

    def test_a_state_file_too_big_to_save_keeps_the_last_good_one(self, full_disk: Path) -> None:
        store = Store(full_disk)
        store.lock()
        store.save(Record(state="loading"))
        fill(full_disk)
        bigger = Record(state="port_check", settings={"padding": "x" * 100_000})
        assert "No space left on device" in (store.save(bigger) or "")
        loaded = store.load()
        assert loaded is not None and loaded.state == "loading"  # too big to rewrite in place: the old one stays


class TestCallbackFaults:
    def test_misbehaving_endpoints_never_change_the_outcome_and_are_recorded(
        self, tmp_path: Path, callbacks: CallbackServer, reap: Path
    ) -> None:
        states = tmp_path / "states.toml"
        states.write_text(SHIPPED.replace("attempts = 6\ndeadline = 30.0", "attempts = 4\ndeadline = 2.0"))
        callbacks.script["/start"] = [503]  # unavailable every time, asking for patience
        callbacks.headers["/start"] = {"Retry-After": "1"}
        callbacks.script["/complete"] = ["hang"]  # accepts and never answers
        env = cli_env(reap, path=f"{REAL_JUPYTER.parent}:/usr/bin:/bin", JUPYTER_TOKEN=TOKEN)
        refused = f"http://127.0.0.1:{free_port()}/progress"
        args = ["run", "--states", str(states), "--module", "", "--port", "auto", "--progress-url", refused]
        run = run_cli(
            [*args, "--start-url", callbacks.url("/start"), "--complete-url", callbacks.url("/complete")], env
        )
        assert run.returncode == 0, run.stderr
        recorded = {c["endpoint"] + "/" + c["status"]: c for c in read_state(reap)["callbacks"]}
        start, complete = recorded["start/init_started"], recorded["complete/init_completed"]
        assert (start["delivery"], start["http_status"], start["error"]) == ("undelivered", 503, "HTTP 503")
        assert 1 < start["attempts"] <= 3  # Retry-After: 1 s between tries within a 2 s deadline
        assert complete["delivery"] == "undelivered"
        progress = {key: c["delivery"] for key, c in recorded.items() if c["endpoint"] == "progress"}
        flow = ("validating", "loading", "port_check", "starting", "verifying", "ready")
        assert progress == {f"progress/{state}": "undelivered" for state in flow}
        assert "not delivered" in run.stderr

    def test_a_server_error_is_retried_and_a_client_error_is_not(
        self, tmp_path: Path, callbacks: CallbackServer, reap: Path
    ) -> None:
        callbacks.script["/start"] = [500, 200]
        callbacks.script["/complete"] = [404]
        env = cli_env(reap, path=f"{REAL_JUPYTER.parent}:/usr/bin:/bin", JUPYTER_TOKEN=TOKEN)
        args = ["run", "--module", "", "--port", "auto"]
        run = run_cli(
            [*args, "--start-url", callbacks.url("/start"), "--complete-url", callbacks.url("/complete")], env
        )
        assert run.returncode == 0, run.stderr
        assert len(callbacks.forms("/start")) == 2
        assert len(callbacks.forms("/complete")) == 1
        dump = json.loads(run_cli(["state", "--json"], cli_env(reap)).stdout)
        outcome = {c["status"]: (c["delivery"], c["attempts"], c["http_status"]) for c in dump["callbacks"]}
        assert outcome == {"init_started": ("delivered", 2, 200), "init_completed": ("undelivered", 1, 404)}


def test_a_token_file_that_cannot_be_written_is_reported_not_raised(full_disk: Path) -> None:
    store = Store(full_disk)
    store.lock()
    fill(full_disk)
    problem = store.save_token(Secret(TOKEN * 200))
    assert problem is not None and problem.startswith("cannot keep the token for resume")
    assert TOKEN not in problem
