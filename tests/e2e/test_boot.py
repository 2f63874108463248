"""The server comes back at a later boot, and the platform hears it once per boot (provisioner.boot).

Here systemd is a stand-in (tests/helpers/systemd.py's) and a later boot is the kept plan saying another boot was the
last reported: the VM tier (tests/e2e/vm) reboots real Debian guests."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner import boot, secret
from tests.helpers.accounts import Researcher, as_user, servers_of
from tests.helpers.cli import cli_env, run_cli
from tests.helpers.constants import REAL_JUPYTER, SYSTEM_PATH, TOKEN
from tests.helpers.modules import make_bin
from tests.helpers.net import free_port
from tests.helpers.receiver import CallbackServer
from tests.helpers.signing import KEY, key_file
from tests.helpers.systemd import FAKE_SYSTEMCTL, FAKE_SYSTEMD_RUN


class Machine:
    """Root's side of a VM: the stand-in systemd, root's directory and the unit directory, each the test's own."""

    def __init__(self, tmp_path: Path, home: Path) -> None:
        fakes = make_bin(tmp_path / "fake-systemd", {"systemd-run": FAKE_SYSTEMD_RUN, "systemctl": FAKE_SYSTEMCTL})
        self.units = tmp_path / "transient"
        self.units.mkdir()
        self.system_dir = tmp_path / "var-lib-provisioner"
        self.unit_dir = tmp_path / "etc-systemd-system"
        self.unit_dir.mkdir()
        self.env = cli_env(home, path=f"{fakes}:{REAL_JUPYTER.parent}:{SYSTEM_PATH}") | {
            "FAKE_SYSTEMD_DIR": str(self.units),
            "PROVISIONER_SYSTEM_DIR": str(self.system_dir),
            "PROVISIONER_UNIT_DIR": str(self.unit_dir),
        }

    def cli(self, *args: str, **extra: str) -> tuple[int, str, str]:
        ran = run_cli(list(args), self.env | extra)
        assert "Traceback" not in ran.stderr, ran.stderr
        return ran.returncode, ran.stdout, ran.stderr

    def plan(self, name: str) -> dict[str, object]:
        data: dict[str, object] = json.loads((self.system_dir / f"{name}.boot.json").read_text())
        return data

    def reboot(self, name: str, user: Researcher) -> None:
        """What a reboot leaves: no server, and a kept plan whose last reported boot is not this one."""
        for pid in servers_of(user):
            os.kill(pid, 9)
        path = self.system_dir / f"{name}.boot.json"
        path.write_text(json.dumps(self.plan(name) | {"reported": "an-earlier-boot"}))


@pytest.fixture
def machine(tmp_path: Path, user: Researcher) -> Iterator[Machine]:
    yield Machine(tmp_path, user.home)


def first_run(machine: Machine, user: Researcher, callbacks: CallbackServer, *extra: str) -> None:
    name = user.account.pw_name
    args = ["run", "--user", name, "--launcher", "systemd", "--module", "", "--port", str(free_port()), *extra]
    code, _, err = machine.cli(*args, "--complete-url", callbacks.url("/c"), JUPYTER_TOKEN=TOKEN)
    assert code == 0, err
    assert [form["status"] for form in callbacks.wait_for(1, "/c")] == ["init_completed"]


def test_a_root_run_with_the_systemd_launcher_keeps_a_plan_only_root_can_read_and_enables_the_boot_unit(
    machine: Machine, user: Researcher, callbacks: CallbackServer
) -> None:
    first_run(machine, user, callbacks)
    name = user.account.pw_name
    for kept in (f"{name}.boot.json", f"{name}.token"):
        info = (machine.system_dir / kept).stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o600), kept
    assert (machine.system_dir / f"{name}.token").read_text() == TOKEN
    plan = machine.plan(name)
    assert TOKEN not in json.dumps(plan)
    assert plan["boots"] == 1 and plan["reported"] == boot.boot_id()
    assert plan["urls"] == {"start_url": None, "complete_url": callbacks.url("/c"), "progress_url": None}
    template = machine.unit_dir / boot.TEMPLATE
    assert f'ExecStart="{sys.executable}" -I -m provisioner boot --user %i' in template.read_text()
    link = machine.unit_dir / "multi-user.target.wants" / f"jupyter-init-boot@{name}.service"
    assert link.resolve() == template.resolve()

    # A run refused for its token changes nothing kept: the earlier server still comes back at boot.
    code, _, _ = machine.cli("run", "--user", name, "--module", "", "--port", "auto", JUPYTER_TOKEN="short")
    assert code == 10 and link.exists() and (machine.system_dir / f"{name}.token").read_text() == TOKEN

    # A run for the account without the systemd launcher: nothing of the earlier one comes back at boot.
    for pid in servers_of(user):
        os.kill(pid, 9)
    code, _, err = machine.cli("run", "--user", name, "--module", "", "--port", "auto", JUPYTER_TOKEN=TOKEN)
    assert code == 0, err
    assert not link.exists() and not (machine.system_dir / f"{name}.token").exists()


def test_at_the_next_boot_the_server_comes_back_and_the_platform_hears_it_once(
    machine: Machine, user: Researcher, callbacks: CallbackServer
) -> None:
    first_run(machine, user, callbacks)
    name = user.account.pw_name
    code, said, _ = machine.cli("boot", "--user", name)
    assert code == 0 and "reported already" in said  # the first run's own boot
    [first] = servers_of(user)

    machine.reboot(name, user)
    code, _, err = machine.cli("boot", "--user", name)
    assert code == 0, err
    forms = callbacks.wait_for(2, "/c")
    assert [form["status"] for form in forms] == ["init_completed", "init_completed"]
    assert "boot" not in forms[0]
    assert (forms[1]["boot"], forms[1]["boot_id"]) == ("2", boot.boot_id())
    [second] = servers_of(user)
    assert second != first and forms[1]["pid"] == str(second)
    assert forms[1]["url"] == forms[0]["url"]

    state = json.loads(machine.cli("state", "--json", "--output-dir", str(user.out))[1])
    assert state["status"] == "ready" and state["boot"] == 2 and state["server"]["pid"] == second
    assert state["history"][0]["state"] == "boot"

    code, said, _ = machine.cli("boot", "--user", name)  # the same boot again: nothing is sent twice
    assert code == 0 and "reported already" in said
    assert len(callbacks.forms("/c")) == 2 and servers_of(user) == [second]


def test_after_stop_nothing_comes_back_at_the_next_boot(
    machine: Machine, user: Researcher, callbacks: CallbackServer
) -> None:
    first_run(machine, user, callbacks)
    name = user.account.pw_name
    code, _, err = machine.cli("stop", "--output-dir", str(user.out))
    assert code == 0, err
    machine.reboot(name, user)
    code, said, err = machine.cli("boot", "--user", name)
    assert code == 0, err
    assert "stopped" in said
    assert servers_of(user) == [] and len(callbacks.forms("/c")) == 1


def test_boot_is_roots_and_says_so_to_anyone_else(user: Researcher) -> None:
    ran = as_user(user.account.pw_name, "boot", "--user", user.account.pw_name)
    assert ran.returncode == 2 and "boot is root's" in ran.stderr


def test_boot_for_an_account_nothing_was_kept_for_does_nothing(machine: Machine, user: Researcher) -> None:
    code, said, _ = machine.cli("boot", "--user", user.account.pw_name)
    assert code == 0 and "nothing to bring back" in said


def test_with_the_platforms_key_a_later_boot_is_signed_with_it_and_the_key_stays_roots(
    machine: Machine, user: Researcher, callbacks: CallbackServer, tmp_path: Path
) -> None:
    key = key_file(tmp_path)
    first_run(machine, user, callbacks, "--signing-key-file", str(key))
    name = user.account.pw_name
    kept = machine.system_dir / f"{name}.key"
    info = kept.stat()
    assert (kept.read_bytes(), info.st_uid, stat.S_IMODE(info.st_mode)) == (KEY, 0, 0o600)
    key.unlink()  # the key given on /run is gone after a reboot

    machine.reboot(name, user)
    code, _, err = machine.cli("boot", "--user", name)
    assert code == 0, err
    callbacks.wait_for(2, "/c")
    later = [r for r in callbacks.received if r.form.get("boot") == "2"]
    assert [r.form["status"] for r in later] == ["init_completed"]
    # Root's monitor signed it, having found the server itself: the worker never held the key.
    assert later[0].headers["X-Jupyter-Init-Signature"] == secret.sign(later[0].body, KEY)


def test_the_boot_unit_is_not_enabled_for_an_interpreter_the_account_can_change(
    user: Researcher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python3").write_text("")
    user.own(venv, venv / "bin", venv / "bin" / "python3")
    monkeypatch.setattr(sys, "executable", str(venv / "bin" / "python3"))
    assert f"can be changed by {user.account.pw_name}" in str(boot._runnable_as_root())
    monkeypatch.undo()
    assert boot._runnable_as_root() is None  # this installation: root's
