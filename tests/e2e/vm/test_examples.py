"""Every cloud-init example, booted for real: a Debian guest under QEMU runs Debian's cloud-init on the example as a
platform fills it in, and the platform (a receiver on the host) hears signed callbacks; the researcher's token opens
the server through the forward, and nothing else does."""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.vm.conftest import BOOT_TIMEOUT, RESEARCHER, TOKEN, Booted, booted, filled, module_stack


def status_of(port: int, token: str | None, scheme: str = "http") -> int:
    """/api/status through the forward. Over https the certificate is not judged here: the tests that use TLS hold it
    to the fingerprint init_completed carried."""
    request = urllib.request.Request(f"{scheme}://127.0.0.1:{port}/api/status")
    if token is not None:
        request.add_header("Authorization", f"token {token}")
    context = ssl._create_unverified_context() if scheme == "https" else None
    try:
        with urllib.request.urlopen(request, timeout=20, context=context) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def signed(booted: Booted, path: str, boot: str | None = None) -> dict[str, str]:
    """The one callback `path` received for `boot` (None: the first boot's, which names none), its signature checked
    against the token."""
    [received] = [r for r in booted.callbacks.received if r.path == path and r.form.get("boot") == boot]
    expected = "sha256=" + hmac.new(TOKEN.encode(), received.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(received.headers["X-Jupyter-Init-Signature"], expected)
    return received.form


def until_cloud_init_ends(booted: Booted, grace: float = 15) -> list[dict[str, str]]:
    """What COMPLETE_URL received once it received something, or `grace` seconds after cloud-init said it finished
    (its console line), or at BOOT_TIMEOUT: a boot that went wrong fails in seconds, not at the timeout."""
    deadline = time.monotonic() + BOOT_TIMEOUT
    while time.monotonic() < deadline:
        if booted.callbacks.forms("/complete"):
            break
        if "Cloud-init v." in booted.vm.tail(5) and " finished at " in booted.vm.tail(5):
            deadline = min(deadline, time.monotonic() + grace)
        time.sleep(1)
    return booted.callbacks.forms("/complete")


def provisioned(booted: Booted, scheme: str = "http") -> dict[str, str]:
    """init_started then init_completed, signed; the checks every example's boot must pass; init_completed."""
    started = time.monotonic()
    forms = until_cloud_init_ends(booted)
    assert forms, f"no init_completed; the guest's console ends: {booted.vm.tail()}"
    took = time.monotonic() - started
    assert [r.path for r in booted.callbacks.received][:1] == ["/start"]
    assert signed(booted, "/start")["status"] == "init_started"
    completed = signed(booted, "/complete")
    assert completed["status"] == "init_completed", completed
    assert completed["port"] == "8008"
    assert completed["url"].endswith(":8008/")
    print(f"init_completed {took:.0f} s after boot began")

    assert completed["url"].startswith(f"{scheme}://")
    assert status_of(booted.port, TOKEN, scheme) == 200
    assert status_of(booted.port, None, scheme) == 403
    assert status_of(booted.port, "not-" + TOKEN, scheme) == 403

    vm = booted.vm
    # `cloud-init status --format json` is newer than Debian 11's cloud-init: its status line and result.json are not.
    done = vm.run("cloud-init status --wait --long", timeout=300)
    assert "status: done" in done.out, done.out
    result = json.loads(vm.run("cat /run/cloud-init/result.json").out)
    assert result["v1"]["errors"] == [], result

    out = f"/home/{RESEARCHER}/.jupyter"
    modes = vm.run(f"stat -c '%n %U %a' {out} {out}/*").out.split("\n")
    shown = dict(line.split(" ", 1) for line in modes if line)
    assert shown[out] == f"{RESEARCHER} 700", shown
    for name in ("jupyter_info.txt", "jupyter_info.json", "jupyter.log", "provisioner-state.json"):
        assert shown[f"{out}/{name}"] == f"{RESEARCHER} 600", (name, shown)
    return completed


def guest_state(booted: Booted, jupyter_init: str) -> str:
    ran = booted.vm.run(f"{jupyter_init} state --output-dir {OUT}")
    assert ran.code == 0, ran.out + ran.err
    return ran.out


JUPYTER_INIT = "/opt/jupyter-init/bin/jupyter-init"
OUT = f"/home/{RESEARCHER}/.jupyter"
SERVER_UNIT = f"jupyter-notebook-{RESEARCHER}-8008.service"
BOOT_UNIT = f"jupyter-init-boot@{RESEARCHER}.service"


def reboot(booted: Booted, how: str) -> float:
    """A clean reboot (ACPI power-off through the monitor, then the same disk booted again) or a hard reset; when
    the guest began booting again."""
    if how == "clean":
        booted.vm.power_off()
        began = time.monotonic()
        booted.vm.boot()
    else:
        booted.vm.reset()
        began = time.monotonic()
    booted.vm.wait_for_agent(BOOT_TIMEOUT)
    return began


def came_back(booted: Booted, boot: int, began: float) -> dict[str, str]:
    """The server of boot `boot` answers, and the platform heard it: init_started, then init_completed with the first
    boot's URL and a new pid, both signed and naming this boot."""
    deadline = time.monotonic() + BOOT_TIMEOUT
    while time.monotonic() < deadline and not [
        f for f in booted.callbacks.forms("/complete") if f.get("boot") == str(boot)
    ]:
        time.sleep(1)
    took = time.monotonic() - began
    completed = signed(booted, "/complete", str(boot))
    print(f"boot {boot}: init_completed {took:.0f} s after the guest began booting")
    assert signed(booted, "/start", str(boot))["status"] == "init_started"
    first = signed(booted, "/complete")
    assert completed["status"] == "init_completed", completed
    assert (completed["url"], completed["port"]) == (first["url"], first["port"])
    assert completed["pid"] != first["pid"]
    boot_id = booted.vm.run("cat /proc/sys/kernel/random/boot_id").out.strip()
    assert completed["boot_id"] == boot_id
    assert status_of(booted.port, TOKEN) == 200
    assert status_of(booted.port, None) == 403
    state = guest_state(booted, JUPYTER_INIT)
    assert "status:     ready" in state and f"boot:       {boot} " in state
    assert f"pid {completed['pid']}, " in state
    return completed


def systemd_holds_the_server_as_the_account_with_the_token_in_roots_files_only(booted: Booted) -> None:
    vm = booted.vm
    shown = vm.run(f"systemctl show -p User -p ActiveState -p Result {SERVER_UNIT}").out
    assert "ActiveState=active" in shown and "Result=success" in shown, shown
    uid = vm.run(f"id -u {RESEARCHER}").out.strip()
    assert f"User={uid}" in shown or f"User={RESEARCHER}" in shown, shown
    vm.write_file("/root/token.pattern", TOKEN.encode())  # never on the guest's command lines: the test's own leak
    where = "/etc /run/systemd /var/lib/provisioner /var/log"
    holding = vm.run(f"grep -rlF -f /root/token.pattern {where} 2>/dev/null").out.split()
    assert sorted(holding) == [f"/var/lib/provisioner/{RESEARCHER}.env", f"/var/lib/provisioner/{RESEARCHER}.token"]
    modes = vm.run(f"stat -c '%a %U' /var/lib/provisioner /var/lib/provisioner/{RESEARCHER}.env").out.split("\n")
    assert modes[:2] == ["700 root", "400 root"], modes
    assert TOKEN not in vm.run("ps -eo args").out
    assert TOKEN not in vm.run("journalctl -b --no-pager").out
    assert TOKEN not in vm.run(f"systemctl cat {SERVER_UNIT} {BOOT_UNIT}").out


@pytest.mark.parametrize("release", ["11", "12", "13"])
def test_the_standalone_example_provisions_a_fresh_vm(tmp_path: Path, release: str) -> None:
    with booted(tmp_path, release, filled("user-data-standalone.yaml")) as vm:
        provisioned(vm)
        assert "ready" in guest_state(vm, JUPYTER_INIT)
        systemd_holds_the_server_as_the_account_with_the_token_in_roots_files_only(vm)
        if release != "12":
            return
        came_back(vm, 2, reboot(vm, "clean"))
        came_back(vm, 3, reboot(vm, "hard"))
        # Stopped, it stays stopped across a reboot: the boot unit runs, and starts nothing.
        stopped = vm.vm.run(f"{JUPYTER_INIT} stop --output-dir {OUT}")
        assert stopped.code == 0, stopped.err
        assert vm.vm.run(f"systemctl is-active {SERVER_UNIT}").out.strip() == "inactive"
        heard = len(vm.callbacks.received)
        reboot(vm, "clean")
        ran = vm.vm.run(boot_unit_ended(), timeout=BOOT_TIMEOUT)
        assert "not started at boot 4" in ran.out, ran.out
        assert status_of_closed(vm.port)
        assert len(vm.callbacks.received) == heard
        assert "status:     stopped" in vm.vm.run(f"{JUPYTER_INIT} state --output-dir {OUT}").out


def boot_unit_ended() -> str:
    """A guest script: wait until the boot unit of this boot has run and exited; what it said."""
    ended = f"systemctl show -p ExecMainExitTimestampMonotonic --value {BOOT_UNIT}"
    return f'until [ "$({ended})" -gt 0 ] 2>/dev/null; do sleep 1; done; journalctl -b -u {BOOT_UNIT} --no-pager'


def status_of_closed(port: int) -> bool:
    """Nothing answers through the forward: the guest's 8008 is closed."""
    try:
        status_of(port, TOKEN)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return True
    return False


def test_the_module_stack_example_provisions_a_vm_and_its_server_comes_back_after_every_reboot(
    tmp_path: Path,
) -> None:
    with booted(tmp_path, "12", filled("user-data.yaml"), module_stack()) as vm:
        provisioned(vm)
        assert "ready" in guest_state(vm, JUPYTER_INIT)
        systemd_holds_the_server_as_the_account_with_the_token_in_roots_files_only(vm)

        came_back(vm, 2, reboot(vm, "clean"))
        systemd_holds_the_server_as_the_account_with_the_token_in_roots_files_only(vm)
        shown = vm.vm.run(f"systemctl show -p Result -p ExecMainStatus {BOOT_UNIT}").out
        assert "Result=success" in shown and "ExecMainStatus=0" in shown, shown
        came_back(vm, 3, reboot(vm, "hard"))
        # cloud-init's per-instance modules did not run again: runcmd's own run sent its two callbacks, once.
        assert len([r for r in vm.callbacks.received if "boot" not in r.form]) == 2

        # The module stack is gone at the next boot: the platform hears why.
        broken = 'LmodError("the stack is gone")\n'
        vm.vm.run(f"printf '{broken}' > /etc/lmod/modules/JupyterNotebook.lua")
        began = reboot(vm, "clean")
        deadline = began + BOOT_TIMEOUT
        while time.monotonic() < deadline and not [f for f in vm.callbacks.forms("/complete") if f.get("boot") == "4"]:
            time.sleep(1)
        failed = signed(vm, "/complete", "4")
        assert (failed["status"], failed["reason"]) == ("failed", "module_load_failed"), failed
        assert "status:     failed" in vm.vm.run(f"{JUPYTER_INIT} state --output-dir {OUT}").out


def test_the_drop_in_example_provisions_a_vm_with_the_old_runcmd_line(tmp_path: Path) -> None:
    with booted(tmp_path, "12", filled("user-data-dropin.yaml"), module_stack()) as vm:
        provisioned(vm)
        assert "ready" in guest_state(vm, JUPYTER_INIT)
        # Run as the researcher, it does not come back by itself (docs/deploying.md#after-a-reboot): `state` says so,
        # and the researcher's `resume` brings it back.
        reboot(vm, "clean")
        state = vm.vm.run(f"{JUPYTER_INIT} state --output-dir {OUT}")
        assert state.code == 25 and "started before the VM last booted" in state.out, state.out
        assert len(vm.callbacks.received) == 2
        resumed = vm.vm.run(f"su - {RESEARCHER} -c '{JUPYTER_INIT} resume'", timeout=BOOT_TIMEOUT)
        assert resumed.code == 0, resumed.err
        assert status_of(vm.port, TOKEN) == 200 and status_of(vm.port, None) == 403
