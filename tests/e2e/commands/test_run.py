"""`provisioner run` when the record already names a live server: adopted or replaced, never lost, the platform told.

Every test here runs real Jupyter servers and a real callback receiver.
"""

from __future__ import annotations

import hmac
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.error import HTTPError

import pytest

from provisioner import netinfo
from provisioner.reporter import SIGNATURE_HEADER
from provisioner.secret import sign
from tests.helpers.cli import cli_env, jupyter_pids, read_state, run_cli, start_cli
from tests.helpers.constants import REAL_JUPYTER, TOKEN
from tests.helpers.net import free_port, has_ipv6_loopback
from tests.helpers.receiver import CallbackServer, statuses, urls


def answers(port: int, token: str) -> int:
    """What the server on `port` answers a request for its API with this token."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/status", headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except HTTPError as exc:
        return exc.code


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_run_again_while_the_server_is_up_adopts_it_and_tells_the_platform(
    module_tree: Path, callbacks: CallbackServer, reap: Path
) -> None:
    env = cli_env(reap, module_tree, JUPYTER_TOKEN=TOKEN)
    assert run_cli(["run", "--port", "auto", *urls(callbacks)], env).returncode == 0
    [pid] = jupyter_pids(reap)
    port = read_state(reap)["server"]["port"]

    again = run_cli(["run", "--port", "auto", *urls(callbacks)], env)
    assert again.returncode == 0, again.stderr
    assert f"the server an earlier run started is up (pid {pid}, port {port})" in again.stderr
    assert jupyter_pids(reap) == [pid]
    callbacks.wait_for(2, "/complete")
    assert statuses(callbacks, "/start") == ["init_started", "init_started"]
    assert statuses(callbacks, "/complete") == ["init_completed", "init_completed"]
    told = [r for r in callbacks.received if r.path == "/complete"][-1]
    assert hmac.compare_digest(told.headers[SIGNATURE_HEADER], sign(told.body, TOKEN.encode()))
    assert (told.form["port"], told.form["pid"]) == (str(port), str(pid))
    reported = f"http://{netinfo.vm_ipv4() or '127.0.0.1'}:{port}/"  # bound to 0.0.0.0: the VM's address
    assert told.form["url"] == reported
    assert [form.get("url") for form in callbacks.forms("/start")] == [None, reported]  # the adopting run's too
    state = read_state(reap)
    assert (state["outcome"], state["server"]["pid"]) == ("ready", pid)
    outcomes = {step["state"]: step["outcome"] for step in state["history"]}
    assert outcomes["starting"] == outcomes["port_check"] == "skipped"  # nothing started, no port checked
    assert outcomes["verifying"] == outcomes["ready"] == "ok"  # the live server answered with the token again
    assert {c["delivery"] for c in state["callbacks"]} == {"delivered"}

    third = run_cli(["run", "--port", "auto", *urls(callbacks)], env)  # the adopting run's record is adoptable too
    assert third.returncode == 0, third.stderr
    assert "adopting it" in third.stderr and jupyter_pids(reap) == [pid]


@pytest.mark.parametrize(
    ("bind", "host"),
    [
        pytest.param("127.0.0.1", "127.0.0.1", id="ipv4"),
        pytest.param(
            "::1", "[::1]", id="ipv6", marks=pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback")
        ),
    ],
)
def test_a_server_bound_to_one_address_is_reported_at_that_address_by_the_run_and_by_the_run_that_adopts_it(
    callbacks: CallbackServer, reap: Path, bind: str, host: str
) -> None:
    env = cli_env(reap, path=f"{REAL_JUPYTER.parent}:/usr/bin:/bin", JUPYTER_TOKEN=TOKEN)
    args = ["run", "--module", "", "--ip", bind, "--port", "auto", *urls(callbacks)]
    first = run_cli(args, env)
    assert first.returncode == 0, first.stderr
    port = read_state(reap)["server"]["port"]
    url = f"http://{host}:{port}/"
    assert [form["url"] for form in callbacks.wait_for(1, "/complete")] == [url]
    info = json.loads((reap / ".jupyter" / "jupyter_info.json").read_text())
    assert info["url"] == f"{url}?token={TOKEN}"
    assert f"URL:       {url}?token={TOKEN}\n" in (reap / ".jupyter" / "jupyter_info.txt").read_text()
    assert info["tunnel"] == f"ssh -L {port}:{host}:{port} USER@{info['vm_ip']}"
    state = run_cli(["state", "--json"], cli_env(reap))
    assert json.loads(state.stdout)["server"]["url"] == url
    assert f"{url} (running)" in run_cli(["state"], cli_env(reap)).stdout
    request = urllib.request.Request(url + "api/status", headers={"Authorization": f"token {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200

    again = run_cli(args, env)
    assert again.returncode == 0, again.stderr
    assert "adopting it" in again.stderr
    assert [form.get("url") for form in callbacks.wait_for(2, "/start")] == [None, url]
    assert [form["url"] for form in callbacks.wait_for(2, "/complete")] == [url, url]
    assert json.loads(run_cli(["state", "--json"], cli_env(reap)).stdout)["server"]["url"] == url


def test_run_with_another_port_stops_the_recorded_server_and_starts_one_on_that_port(
    module_tree: Path, callbacks: CallbackServer, reap: Path
) -> None:
    env = cli_env(reap, module_tree, JUPYTER_TOKEN=TOKEN)
    assert run_cli(["run", "--port", "auto", *urls(callbacks)], env).returncode == 0
    [old] = jupyter_pids(reap)
    old_port = read_state(reap)["server"]["port"]
    new_port = free_port()

    again = run_cli(["run", "--port", str(new_port), *urls(callbacks)], env)
    assert again.returncode == 0, again.stderr
    assert f"port {new_port} asked for, the server has {old_port}" in again.stderr
    [new] = jupyter_pids(reap)
    assert new != old
    assert read_state(reap)["server"]["pid"] == new
    assert answers(new_port, TOKEN) == 200 and not listening(old_port)
    assert callbacks.wait_for(2, "/complete")[-1]["port"] == str(new_port)


def test_run_with_another_token_leaves_no_server_that_takes_the_old_one(
    module_tree: Path, callbacks: CallbackServer, reap: Path
) -> None:
    env = cli_env(reap, module_tree, JUPYTER_TOKEN=TOKEN)
    assert run_cli(["run", "--port", "auto", *urls(callbacks)], env).returncode == 0
    other = "tok-" + "0a1b2c3d4e" * 4
    again = run_cli(["run", "--port", "auto", *urls(callbacks)], {**env, "JUPYTER_TOKEN": other})
    assert again.returncode == 0, again.stderr
    assert "another token" in again.stderr and other not in again.stderr and TOKEN not in again.stderr
    assert len(jupyter_pids(reap)) == 1
    port = read_state(reap)["server"]["port"]
    assert (answers(port, other), answers(port, TOKEN)) == (200, 403)


def test_a_run_that_fails_on_its_token_keeps_the_live_server_in_the_record(
    module_tree: Path, callbacks: CallbackServer, reap: Path
) -> None:
    env = cli_env(reap, module_tree, JUPYTER_TOKEN=TOKEN)
    assert run_cli(["run", "--port", "auto", *urls(callbacks)], env).returncode == 0
    [pid] = jupyter_pids(reap)
    before = read_state(reap)
    for bad in ({}, {"JUPYTER_TOKEN": "two words"}, {"JUPYTER_TOKEN": "   "}):
        failed = run_cli(["run", "--port", "auto", *urls(callbacks)], {**cli_env(reap, module_tree), **bad})
        assert failed.returncode == 10, failed.stderr
        assert jupyter_pids(reap) == [pid]  # a bad invocation does not take a working server down
        assert read_state(reap) == before  # nor touches the record that is the only handle on it
    assert statuses(callbacks, "/start")[-3:] == ["failed/no_token"] * 3
    assert run_cli(["resume"], cli_env(reap, module_tree)).returncode == 0
    assert jupyter_pids(reap) == [pid]
    stopped = run_cli(["stop"], cli_env(reap))
    assert f"stopped the server (pid {pid})" in stopped.stdout
    assert jupyter_pids(reap) == []


def test_a_run_killed_once_its_server_spawned_is_adopted_by_the_same_run_again(
    module_tree: Path, callbacks: CallbackServer, reap: Path
) -> None:
    """The issue's case: killed mid-run, run again: one server (the first), and `stop` stops it."""
    env = cli_env(reap, module_tree, JUPYTER_TOKEN=TOKEN)
    port = free_port()
    killed = start_cli(["run", "--port", str(port), *urls(callbacks)], env)
    deadline = time.monotonic() + 60
    while not read_state(reap).get("server") and time.monotonic() < deadline:
        time.sleep(0.005)
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    [pid] = jupyter_pids(reap)

    again = run_cli(["run", "--port", str(port), *urls(callbacks)], env)
    assert again.returncode == 0, again.stderr
    assert jupyter_pids(reap) == [pid]
    assert read_state(reap)["server"]["pid"] == pid
    assert callbacks.wait_for(1, "/complete")[-1]["pid"] == str(pid)
    assert run_cli(["stop"], cli_env(reap)).returncode == 0
    assert jupyter_pids(reap) == [] and not listening(port)


FLOW = ("validating", "loading", "port_check", "starting", "verifying", "ready")


@pytest.mark.parametrize("verb", ["resume", "run"])
@pytest.mark.parametrize("state", FLOW)
def test_sigkill_in_any_state_then_resume_or_run_leaves_one_server_and_every_callback_delivered(
    module_tree: Path, callbacks: CallbackServer, reap: Path, state: str, verb: str
) -> None:
    env = cli_env(reap, module_tree, JUPYTER_TOKEN=TOKEN)
    killed = start_cli(["run", "--port", "auto", *urls(callbacks)], env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and killed.poll() is None:
        if any(step["state"] == state for step in read_state(reap).get("history", [])):
            break
        time.sleep(0.001)
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    assert read_state(reap)["outcome"] == "running"  # the record says nothing about the kill: it could not

    then = run_cli([verb] if verb == "resume" else ["run", "--port", "auto", *urls(callbacks)], env)
    assert then.returncode == 0, then.stderr
    [pid] = jupyter_pids(reap)
    record = read_state(reap)
    assert record["server"]["pid"] == pid and record["outcome"] == "ready"
    recorded = [(c["status"], c["delivery"]) for c in record["callbacks"]]
    assert recorded == [("init_started", "delivered"), ("init_completed", "delivered")]
    callbacks.wait_for(1, "/complete")
    if verb == "resume":  # the same run, continued: the platform hears each callback once
        assert statuses(callbacks, "/start") == ["init_started"]
        assert statuses(callbacks, "/complete") == ["init_completed"]
    else:  # a new run: it tells the platform again, about the one server
        assert statuses(callbacks, "/complete")[-1] == "init_completed"
        assert callbacks.forms("/complete")[-1]["pid"] == str(pid)


def test_a_token_that_is_not_text_is_no_token_and_never_kept(callbacks: CallbackServer, reap: Path) -> None:
    """Bytes that are not UTF-8, in the environment or the argument: refused as any unusable token, and not kept."""
    env = {key.encode(): value.encode() for key, value in cli_env(reap).items()}
    command = [sys.executable.encode(), b"-m", b"provisioner", b"run", b"--module", b""]
    start = callbacks.url("/start").encode()
    for token_in_env, argv in (
        (True, [*command, b"--start-url", start]),
        (False, [*command, b"--", b"abc\xffdef", start, start]),  # the old call's shape: TOKEN and two URLs
    ):
        environment = {**env, b"JUPYTER_TOKEN": b"abc\xffdef"} if token_in_env else env
        run = subprocess.run(argv, env=environment, capture_output=True, check=False)
        err = run.stderr.decode(errors="replace")
        assert run.returncode == 10, err
        assert "Traceback" not in err
        assert not (reap / ".jupyter" / "provisioner-token").exists()
    assert [r.form["reason"] for r in callbacks.received] == ["no_token", "no_token"]
