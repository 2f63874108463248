"""--signing-key-file: callbacks signed with the platform's own key; as root for a real second account, the key stays
with root, and root signs only what it can vouch for."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import pwd
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from provisioner import netinfo, privsep, signing
from provisioner.boot import Boot
from provisioner.errors import UsageError
from provisioner.secret import Secret
from provisioner.settings import Settings, resolve
from provisioner.values import Account
from tests.helpers.cli import cli_env, run_cli, start_cli
from tests.helpers.constants import REAL_JUPYTER, TOKEN
from tests.helpers.definitions import shipped
from tests.helpers.docs import WHERE, blocks
from tests.helpers.modules import write_module
from tests.helpers.net import free_port
from tests.helpers.receiver import CallbackServer
from tests.helpers.signing import KEY, key_file

EXPECTED = {
    "/progress": ["validating", "loading", "port_check", "starting", "verifying", "ready"],
    "/start": ["init_started"],
    "/complete": ["init_completed"],
}


def documented_verify() -> Any:
    """The receiver's verify() exactly as docs/reference/callbacks.md shows it."""
    [snippet] = [block for block in blocks(WHERE["receiver"].text()) if block.lang == "python"]
    namespace: dict[str, Any] = {}
    exec("\n".join(snippet.lines), namespace)
    return namespace["verify"]


def callback_args(callbacks: CallbackServer) -> list[str]:
    return [
        *("--start-url", callbacks.url("/start"), "--complete-url", callbacks.url("/complete")),
        *("--progress-url", callbacks.url("/progress")),
    ]


def verified_with_the_key(callbacks: CallbackServer) -> dict[str, list[str]]:
    """Every callback received, verified with the documented receiver and the key, and refused with the token."""
    verify = documented_verify()
    callbacks.wait_for(sum(map(len, EXPECTED.values())))
    verified: dict[str, list[str]] = {}
    for received in callbacks.received:
        signature = received.headers["X-Jupyter-Init-Signature"]
        fields = verify(received.body, signature, KEY)
        verified.setdefault(received.path, []).append(fields["status"])
        with pytest.raises(ValueError, match="bad signature"):
            verify(received.body, signature, TOKEN.encode())
    return verified


class TestTheKeyFile:
    def test_it_is_read_without_its_line_end(self, tmp_path: Path) -> None:
        key = signing.read_key(key_file(tmp_path, KEY + b"\r\n"), "--signing-key-file")
        assert key.sign(b"body") == "sha256=" + hmac.new(KEY, b"body", hashlib.sha256).hexdigest()
        assert "platform-key" not in repr(key) and "platform-key" not in str(key)

    @pytest.mark.parametrize("content", [b"", b"short-key\n", b"k" * (signing.KEY_MAX + 1)])
    def test_a_key_too_short_or_too_long_is_one_line_that_does_not_show_it(
        self, tmp_path: Path, content: bytes
    ) -> None:
        with pytest.raises(UsageError) as raised:
            signing.read_key(key_file(tmp_path, content), "--signing-key-file")
        message = raised.value.message
        assert message.startswith("--signing-key-file: a signing key is 32 to 4096 bytes;")
        assert "short-key" not in message and "kkkk" not in message and "\n" not in message

    def test_a_key_others_can_read_is_refused(self, tmp_path: Path) -> None:
        path = key_file(tmp_path)
        path.chmod(0o640)
        with pytest.raises(UsageError) as raised:
            signing.read_key(path, "--signing-key-file")
        assert raised.value.message.endswith("can be read by others (mode 640); make it 0600")

    def test_a_fifo_is_refused_at_once(self, tmp_path: Path) -> None:
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)
        with pytest.raises(UsageError, match="it is not a regular file"):
            signing.read_key(fifo, "--signing-key-file")

    def test_as_root_a_key_another_account_can_change_is_refused(
        self, researcher: pwd.struct_passwd, reap: Path, callbacks: CallbackServer
    ) -> None:
        theirs = key_file(Path(researcher.pw_dir))
        os.chown(theirs, researcher.pw_uid, researcher.pw_gid)
        run = run_cli(["run", "--port", str(free_port()), "--signing-key-file", str(theirs)], cli_env(reap))
        assert run.returncode == 2
        assert run.stderr.strip().endswith(f"is {researcher.pw_name}'s; as root, give a file that only root can change")
        assert KEY.decode() not in run.stderr
        assert callbacks.received == []


def test_a_run_signs_every_callback_with_the_platforms_key_not_the_token(
    module_tree: Path, reap: Path, callbacks: CallbackServer, tmp_path: Path
) -> None:
    args = ["run", "--port", str(free_port()), *callback_args(callbacks)]
    env = cli_env(reap, module_tree, JUPYTER_TOKEN=TOKEN, PROVISIONER_SIGNING_KEY_FILE=str(key_file(tmp_path)))
    run = run_cli(args, env)
    assert run.returncode == 0, run.stderr
    assert verified_with_the_key(callbacks) == EXPECTED


def _memory_holds(pid: int, needle: bytes) -> bool:
    """Whether any readable mapping of the process holds `needle` (read as root through /proc/PID/mem)."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            span, mode = line.split()[:2]
            if not mode.startswith("r") or "[vvar]" in line or "[vsyscall]" in line:
                continue
            start, end = (int(part, 16) for part in span.split("-"))
            try:
                mem.seek(start)
                if needle in mem.read(end - start):
                    return True
            except (OSError, OverflowError, ValueError):
                continue
    return False


def _child_of(parent: int, uid: int) -> int | None:
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                status = (proc / "status").read_text()
            except OSError:
                continue
            if f"PPid:\t{parent}\n" in status and re.search(rf"^Uid:\t{uid}\t", status, re.M):
                return int(proc.name)
    return None


@pytest.fixture
def slow_module_of(researcher: pwd.struct_passwd) -> Iterator[Path]:
    """A module tree the account can read, whose JupyterNotebook takes 3 s to load."""
    modules = Path(researcher.pw_dir) / "modules"
    modules.mkdir()
    write_module(modules, "JupyterNotebook", f'os.execute("sleep 3")\nprepend_path("PATH", "{REAL_JUPYTER.parent}")\n')
    yield modules


def test_as_root_for_an_account_the_key_stays_with_root_and_every_callback_is_signed(
    researcher: pwd.struct_passwd, slow_module_of: Path, reap: Path, callbacks: CallbackServer, tmp_path: Path
) -> None:
    args = ["run", "--user", researcher.pw_name, "--port", str(free_port()), *callback_args(callbacks)]
    args += ["--signing-key-file", str(key_file(tmp_path))]
    process = start_cli(args, cli_env(reap, slow_module_of, JUPYTER_TOKEN=TOKEN))
    try:
        deadline = time.monotonic() + 10
        worker = None
        while worker is None and time.monotonic() < deadline:
            worker = _child_of(process.pid, researcher.pw_uid)
            time.sleep(0.05)
        assert worker is not None, "no worker running as the account"
        callbacks.wait_for(1, "/start")  # the worker is well under way: the module takes 3 s
        assert not _memory_holds(worker, KEY), "the account's worker holds the platform's key"
        assert _memory_holds(process.pid, KEY), "the scan would have found it: root's monitor holds it"
    finally:
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert verified_with_the_key(callbacks) == EXPECTED


@pytest.fixture
def entrusted(researcher: pwd.struct_passwd, tmp_path: Path) -> Iterator[tuple[Account, Settings, int]]:
    """Root's monitor holding the key, for a run of the account's on a fixed port; the port."""
    port = free_port()
    settings = resolve({"port": str(port), "ip": "127.0.0.1"}, {"HOME": researcher.pw_dir}, {}, Secret(TOKEN))
    account = Account.of(researcher)
    key = signing.read_key(key_file(tmp_path), "--signing-key-file")
    settings = dataclasses.replace(settings, user=account, signing_key=key)
    assert signing.entrust(settings, shipped()) == {"sign": signing.sign_for}
    yield account, settings, port
    refused = signing.entrust(dataclasses.replace(settings, signing_key=None), shipped())["sign"]
    with pytest.raises(PermissionError, match=r"root was not asked to sign for .* \(give --signing-key-file"):
        refused(account, {"body": "status=init_started"})


def ask_monitor(account: Account, fields: dict[str, str]) -> dict[str, Any]:
    """The monitor's answer to a worker's request to sign a body of these fields, over the real request path."""
    line = json.dumps({"op": "sign", "body": urlencode(fields)}).encode()
    return privsep._serve(account, line, {"sign": signing.sign_for})


def now() -> str:
    return str(int(time.time()))


class TestRootVouches:
    def test_a_body_stamped_now_without_a_server_is_signed(self, entrusted: tuple[Account, Settings, int]) -> None:
        account, _, _ = entrusted
        fields = {"status": "init_started", "state": "validating", "timestamp": now()}
        answer = ask_monitor(account, fields)
        body = urlencode(fields).encode()
        assert answer == {"signature": "sha256=" + hmac.new(KEY, body, hashlib.sha256).hexdigest()}

    @pytest.mark.parametrize(
        ("fields", "why"),
        [
            ({"status": "init_started", "timestamp": "100"}, "not stamped with the time"),
            ({"status": "init_started"}, "not stamped with the time"),
            ({"status": "init_started", "timestamp": "", "token": TOKEN}, "not a callback body"),
            ({"state": "loading", "timestamp": ""}, "the status is not one of the definition's"),
            ({"status": "hacked", "timestamp": ""}, "the status is not one of the definition's"),
            ({"status": "failed", "reason": "bribed", "timestamp": ""}, "the state or the reason is not"),
            ({"status": "init_started", "port": "1", "timestamp": ""}, "port 1 is not the one root was given"),
            # Ready, said without a server root could look at: as init_completed, and as the progress of `ready`.
            ({"status": "init_completed", "timestamp": ""}, "a ready server is named without its pid and port"),
            ({"status": "ready", "state": "ready", "timestamp": ""}, "a ready server is named without its pid"),
        ],
    )
    def test_a_body_root_cannot_stand_behind_is_refused(
        self, entrusted: tuple[Account, Settings, int], fields: dict[str, str], why: str
    ) -> None:
        account, _, _ = entrusted
        stamped = {name: (now() if name == "timestamp" and not value else value) for name, value in fields.items()}
        assert why in ask_monitor(account, stamped)["error"]

    def test_a_boot_is_signed_only_as_root_counted_it(self, entrusted: tuple[Account, Settings, int]) -> None:
        account, settings, _ = entrusted
        named = {"status": "init_started", "boot": "2", "boot_id": "b0"}
        assert "names a boot root is not running for" in ask_monitor(account, named | {"timestamp": now()})["error"]
        signing.entrust(settings, shipped(), Boot(2, "b0"))
        assert "signature" in ask_monitor(account, named | {"timestamp": now()})
        for other in ({"boot": "3"}, {"boot_id": "b1"}, {"boot_id": None}):
            fields = {key: value for key, value in (named | other).items() if value is not None}
            assert "names a boot" in ask_monitor(account, fields | {"timestamp": now()})["error"], other

    def test_a_body_a_receiver_could_read_another_way_is_refused(
        self, entrusted: tuple[Account, Settings, int]
    ) -> None:
        account, _, _ = entrusted
        for body in (
            f"status=failed&message=x;status=init_completed;url=http://elsewhere/&timestamp={now()}",
            f"status=init_started&timestamp={now()}&status=failed",
            f"%73tatus=init_started&timestamp={now()}",
            f"status=init_started&&timestamp={now()}",
        ):
            line = json.dumps({"op": "sign", "body": body}).encode()
            assert privsep._serve(account, line, {"sign": signing.sign_for}) == {
                "error": "not a callback body of jupyter-init's"
            }

    def test_a_ready_server_root_did_not_find_is_refused(self, entrusted: tuple[Account, Settings, int]) -> None:
        account, _, port = entrusted
        fields = {"status": "init_completed", "url": f"http://127.0.0.1:{port}/", "port": str(port), "pid": "1"}
        answer = ask_monitor(account, {**fields, "timestamp": now()})
        assert answer == {"error": f"no process of {account.name}'s listens on port {port}"}

    def test_the_accounts_own_server_that_ignores_the_token_is_refused(
        self, entrusted: tuple[Account, Settings, int]
    ) -> None:
        account, _, port = entrusted
        # The account's own listener on the port root was given: anything but a Jupyter holding root's token.
        impostor = subprocess.Popen(
            ["runuser", "-u", account.name, "--", sys.executable, "-m", "http.server", str(port), "-b", "127.0.0.1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
        )
        try:
            deadline = time.monotonic() + 10
            pid = None
            while pid is None and time.monotonic() < deadline:
                # runuser's child, running as the account, is the listener.
                pid = _child_of(impostor.pid, account.uid)
                if pid is not None and not netinfo.listens(pid, port):
                    pid = None
                time.sleep(0.05)
            assert pid is not None, "the account's listener never listened"
            fields = {"status": "init_completed", "url": f"http://127.0.0.1:{port}/", "port": str(port)}
            answer = ask_monitor(account, {**fields, "pid": str(pid), "timestamp": now()})
            assert answer == {"error": f"the server on port {port} does not answer with root's token"}
            wrong_url = {**fields, "url": f"http://127.0.0.1:{port}/other/", "pid": str(pid), "timestamp": now()}
            assert ask_monitor(account, wrong_url) == {"error": "the URL is not where root finds the server"}
        finally:
            subprocess.run(["pkill", "-KILL", "-u", account.name], check=False)
            impostor.wait(timeout=10)
