"""What a run records about its callbacks, end to end: real Jupyter, real receivers that misbehave on purpose."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from tests.helpers.cli import cli_env, jupyter_pids, read_state, run_cli, start_cli
from tests.helpers.constants import CHECKOUT, TOKEN
from tests.helpers.definitions import shipped_definition
from tests.helpers.receiver import CallbackServer, serving

QUICK_CALLBACKS = ("attempts = 6\ndeadline = 30.0", "attempts = 2\ndeadline = 3.0")


def quick_states(tmp_path: Path) -> Path:
    states = tmp_path / "states.toml"
    shipped = (CHECKOUT / "states.toml").read_text()
    states.write_text(shipped.replace(*QUICK_CALLBACKS))
    return states


def recorded(home: Path, endpoint: str) -> list[dict[str, object]]:
    return [c for c in read_state(home)["callbacks"] if c["endpoint"] == endpoint]


def test_a_completion_answered_302_is_not_delivered_until_resume_reaches_the_endpoint(
    module_tree: Path, callbacks: CallbackServer, reap: Path
) -> None:
    callbacks.script["/complete"] = [302, 200]
    callbacks.headers["/complete"] = {"Location": "https://platform.example/complete"}
    env = cli_env(reap, module_tree, JUPYTER_TOKEN=TOKEN)
    run = run_cli(["run", "--port", "auto", "--complete-url", callbacks.url("/complete")], env)
    assert run.returncode == 0, run.stderr
    [completed] = recorded(reap, "complete")
    assert (completed["status"], completed["delivery"], completed["http_status"]) == (
        "init_completed",
        "undelivered",
        302,
    )
    assert "moved to https://platform.example/complete" in str(completed["error"])
    assert "https://platform.example/complete" in run.stderr  # the operator is told where to point it

    callbacks.headers.pop("/complete")  # the platform fixed its endpoint
    resumed = run_cli(["resume"], cli_env(reap, module_tree))
    assert resumed.returncode == 0, resumed.stderr
    again = run_cli(["resume"], cli_env(reap, module_tree))
    assert again.returncode == 0, again.stderr
    [completed] = recorded(reap, "complete")
    assert (completed["delivery"], completed["http_status"]) == ("delivered", 200)
    assert [f["status"] for f in callbacks.forms("/complete")] == ["init_completed", "init_completed"]  # 302, 200


def test_a_completion_answered_307_reaches_the_new_address_and_records_it(
    module_tree: Path, callbacks: CallbackServer, reap: Path
) -> None:
    callbacks.script["/old"] = [307]
    callbacks.headers["/old"] = {"Location": "/new"}
    env = cli_env(reap, module_tree, JUPYTER_TOKEN=TOKEN)
    run = run_cli(["run", "--port", "auto", "--complete-url", callbacks.url("/old")], env)
    assert run.returncode == 0, run.stderr
    [completed] = recorded(reap, "complete")
    assert (completed["delivery"], completed["url"]) == ("delivered", callbacks.url("/new"))
    assert [f["status"] for f in callbacks.forms("/new")] == ["init_completed"]


def test_sigterm_after_ready_while_both_endpoints_hang_loses_no_callback(
    module_tree: Path, tmp_path: Path, reap: Path
) -> None:
    """The issue's case: the run is killed while it waits on its callbacks; resume delivers each once."""
    with serving() as callbacks:
        callbacks.script["/start"] = ["hang"]  # every try, until the endpoints are fixed below
        callbacks.script["/complete"] = ["hang"]
        env = cli_env(reap, module_tree, JUPYTER_TOKEN=TOKEN)
        args = ["run", "--port", "auto", "--start-url", callbacks.url("/start")]
        process = start_cli([*args, "--complete-url", callbacks.url("/complete")], env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(callbacks.forms("/complete")) < 1:
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 128 + signal.SIGTERM, stderr
        state = read_state(reap)
        assert state["outcome"] == "ready"  # the server was handed over before the signal
        assert {c["status"]: c["delivery"] for c in state["callbacks"]} == {
            "init_started": "undelivered",
            "init_completed": "undelivered",
        }
        [pid] = jupyter_pids(reap)

        callbacks.script["/start"], callbacks.script["/complete"] = [200], [200]
        tried = {path: len(callbacks.forms(path)) for path in ("/start", "/complete")}
        resumed = run_cli(["resume"], cli_env(reap, module_tree))
        assert resumed.returncode == 0, resumed.stderr
        assert run_cli(["resume"], cli_env(reap, module_tree)).returncode == 0
        assert [f["status"] for f in callbacks.forms("/start")[tried["/start"] :]] == ["init_started"]
        assert [f["status"] for f in callbacks.forms("/complete")[tried["/complete"] :]] == ["init_completed"]
        assert {c["delivery"] for c in read_state(reap)["callbacks"]} == {"delivered"}
        assert jupyter_pids(reap) == [pid]


def test_a_hanging_start_endpoint_does_not_hold_back_init_completed(
    module_tree: Path, callbacks: CallbackServer, reap: Path
) -> None:
    """Not for START's whole policy (30 s per callback): for one attempt's timeout at most, the bound that keeps the
    two in order when START is healthy (docs/reference/callbacks.md, Order)."""
    callbacks.script["/start"] = ["hang"]
    env = cli_env(reap, module_tree, JUPYTER_TOKEN=TOKEN)
    args = ["run", "--port", "auto", "--start-url", callbacks.url("/start")]
    process = start_cli([*args, "--complete-url", callbacks.url("/complete")], env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            steps = read_state(reap).get("history", [])
            if any(step["state"] == "ready" and step["outcome"] == "ok" for step in steps):
                break
            time.sleep(0.005)
        ready = time.monotonic()
        callbacks.wait_for(1, "/complete", timeout=10)
        [completed] = [r for r in callbacks.received if r.path == "/complete"]
        assert completed.at - ready < shipped_definition()["callbacks"]["timeout"] + 1.0
        assert process.poll() is None  # still waiting on START, as its policy allows
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


def test_callback_urls_with_credentials_are_masked_in_the_record_and_used_whole_by_resume(
    module_tree: Path, reap: Path
) -> None:
    with serving() as callbacks:
        host = callbacks.url("/")[len("http://") : -1]
        complete = f"http://platform:pa55word-x@{host}/complete?sig=KEY-0123456789"
        env = cli_env(reap, module_tree, JUPYTER_TOKEN=TOKEN)
        callbacks.script["/complete?sig=KEY-0123456789"] = [503]
        run = run_cli(
            ["run", "--states", str(quick_states(reap.parent)), "--port", "auto", "--complete-url", complete], env
        )
        assert run.returncode == 0, run.stderr
        callbacks.script.pop("/complete?sig=KEY-0123456789")
        resumed = run_cli(["resume"], cli_env(reap, module_tree))
        assert resumed.returncode == 0, resumed.stderr
        dump = run_cli(["state", "--json"], cli_env(reap)).stdout
        received = callbacks.received[-1]
    for text in (dump, run.stderr, resumed.stderr, (reap / ".jupyter" / "provisioner-state.json").read_text()):
        assert "pa55word" not in text and "KEY-0123456789" not in text
    assert json.loads(dump)["settings"]["complete_url"] == f"http://***@{host}/complete?sig=***"
    assert received.path == "/complete?sig=KEY-0123456789"
    assert received.headers["Authorization"].startswith("Basic ")  # the credentials reached the endpoint
    assert [c["delivery"] for c in json.loads(dump)["callbacks"]] == ["delivered"]


def test_resume_after_a_reboot_tells_the_platform_about_the_new_server_last(
    module_tree: Path, callbacks: CallbackServer, reap: Path
) -> None:
    callbacks.script["/complete"] = [404, 200]  # the completion about the first server is not taken
    env = cli_env(reap, module_tree, JUPYTER_TOKEN=TOKEN)
    assert run_cli(["run", "--port", "auto", "--complete-url", callbacks.url("/complete")], env).returncode == 0
    [first] = jupyter_pids(reap)
    os.killpg(first, signal.SIGKILL)  # the VM rebooted
    while jupyter_pids(reap):
        time.sleep(0.05)

    resumed = run_cli(["resume"], cli_env(reap, module_tree))
    assert resumed.returncode == 0, resumed.stderr
    [second] = jupyter_pids(reap)
    told = [(f["status"], f["pid"]) for f in callbacks.forms("/complete")]
    # The one left undelivered goes first, in order; the platform's last word is about the server that runs.
    assert told == [("init_completed", str(first)), ("init_completed", str(first)), ("init_completed", str(second))]
    assert [c["delivery"] for c in read_state(reap)["callbacks"]] == ["delivered", "delivered"]
