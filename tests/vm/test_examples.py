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

from tests.vm.conftest import BOOT_TIMEOUT, RESEARCHER, TOKEN, Booted, booted, filled, module_stack


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


def signed(booted: Booted, path: str) -> dict[str, str]:
    """The one callback `path` received, its signature checked against the token."""
    [received] = [r for r in booted.callbacks.received if r.path == path]
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
    ran = booted.vm.run(f"{jupyter_init} state --output-dir /home/{RESEARCHER}/.jupyter")
    assert ran.code == 0, ran.out + ran.err
    return ran.out


@pytest.mark.parametrize("release", ["11", "12", "13"])
def test_the_standalone_example_provisions_a_fresh_vm(tmp_path: Path, release: str) -> None:
    with booted(tmp_path, release, filled("user-data-standalone.yaml")) as vm:
        provisioned(vm)
        assert "ready" in guest_state(vm, "/opt/jupyter-init/bin/jupyter-init")


def test_the_module_stack_example_provisions_a_vm_whose_image_has_the_stack(tmp_path: Path) -> None:
    with booted(tmp_path, "12", filled("user-data.yaml"), module_stack()) as vm:
        provisioned(vm)
        assert "ready" in guest_state(vm, "/opt/jupyter-init/bin/jupyter-init")


def test_the_drop_in_example_provisions_a_vm_with_the_old_runcmd_line(tmp_path: Path) -> None:
    with booted(tmp_path, "12", filled("user-data-dropin.yaml"), module_stack()) as vm:
        provisioned(vm)
        assert "ready" in guest_state(vm, "/opt/jupyter-init/bin/jupyter-init")
