"""The cloud-init examples, filled in and handed to Debian's own cloud-init as a VM's first boot runs them.

cloud-init runs for real: the NoCloud datasource seeded with the example as user-data, then `cloud-init init
--local`, `cloud-init init`, `cloud-init modules --mode config` and `--mode final`. It runs in mount and UTS
namespaces of its own, where /etc, /home, /opt, /usr/local/bin, /var/lib and /var/log are overlays whose writes land
in the test's directory and /run is a fresh tmpfs, with stand-ins for systemd-run and systemctl (no systemd runs
there; tests/e2e/vm boots the examples under the real one): the accounts it makes, the venv it installs, its logs
and its hostname stay there, and the machine running the tests is left as it was (checked). The examples' `pip install
jupyter-init==VERSION` finds the wheel built from this checkout; the callback URLs point at a local receiver.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from provisioner import __version__
from provisioner.probe import probe
from tests.helpers.accounts import traversable
from tests.helpers.constants import CHECKOUT, PREREQUISITES, REAL_JUPYTER
from tests.helpers.modules import write_module
from tests.helpers.receiver import CallbackServer
from tests.helpers.systemd import FAKE_SYSTEMCTL, FAKE_SYSTEMD_RUN

EXAMPLES = CHECKOUT / "examples" / "cloud-init"


OVERLAID = ("etc", "home", "opt", "usr/local/bin", "var/lib", "var/log")


SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # runcmd's PATH on a VM


BOOT = """
set -eu
root=$1
for dir in {overlaid}; do
    mkdir -p "$root/upper/$dir" "$root/work/$dir"
    mount -t overlay overlay -o "lowerdir=/$dir,upperdir=$root/upper/$dir,workdir=$root/work/$dir" "/$dir"
done
mount -t tmpfs -o mode=0755 tmpfs /run
hostname jupyter-init-test
cloud-init init --local
cloud-init init
cloud-init modules --mode config
cloud-init modules --mode final
cloud-init status --format json > "$root/status.json" || true
""".format(overlaid=" ".join(OVERLAID))


# Only the modules the examples use: the rest (ssh host keys, resizefs, locale...) would touch, or fail in, a container.
CLOUD_CFG = """\
datasource_list: [NoCloud]
network: {config: disabled}
preserve_hostname: true
cloud_init_modules: [write-files, users-groups]
cloud_config_modules: [runcmd]
cloud_final_modules: [package-update-upgrade-install, scripts-user]
"""


@dataclass
class Boot:
    """What a first boot left in the overlays' upper directories, and cloud-init's own verdict."""

    root: Path
    user: str
    completed: subprocess.CompletedProcess[str]

    def upper(self, path: str) -> Path:
        return self.root / "upper" / path.lstrip("/")

    @property
    def uid(self) -> int:
        for line in self.upper("etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == self.user:
                return int(fields[2])
        raise AssertionError(f"cloud-init made no account {self.user}: {self.output()}")

    @property
    def status(self) -> dict[str, object]:
        data: dict[str, object] = json.loads((self.root / "status.json").read_text())
        return data

    def output(self) -> str:
        log = self.upper("var/log/cloud-init-output.log")
        return self.completed.stdout + self.completed.stderr + (log.read_text() if log.exists() else "")

    def stop(self) -> None:
        """Kill what the boot left running (the server, as the account): the namespaces go with it."""
        with contextlib.suppress(AssertionError, FileNotFoundError):
            subprocess.run(["pkill", "-KILL", "-U", str(self.uid)], check=False)


def fill(example: Path, values: dict[str, str]) -> str:
    text = example.read_text()
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    assert not re.findall(r"\$\{[A-Z_]+\}", text), "every placeholder is filled in"
    return text


def host_state() -> tuple[str, ...]:
    """What a boot must not change on the machine running the tests."""
    return (
        Path("/etc/passwd").read_text(),
        Path("/etc/group").read_text(),
        " ".join(sorted(os.listdir("/home"))),
        " ".join(sorted(os.listdir("/opt"))),
        " ".join(sorted(os.listdir("/usr/local/bin"))),
        socket.gethostname(),
        str(Path("/var/lib/cloud").exists()),
    )


@contextlib.contextmanager
def first_boot(example: Path, values: dict[str, str], wheels: Path, root: Path) -> Iterator[Boot]:
    if shutil.which("cloud-init") is None or shutil.which("unshare") is None:
        pytest.fail(f"cloud-init and unshare are needed; {PREREQUISITES} installs them")
    upper = root / "upper"
    seed = upper / "var/lib/cloud/seed/nocloud"
    seed.mkdir(parents=True)
    (seed / "meta-data").write_text(f"instance-id: iid-{secrets.token_hex(4)}\nlocal-hostname: jupyter-init-test\n")
    (seed / "user-data").write_text(fill(example, values))
    (upper / "etc/cloud/cloud.cfg.d").mkdir(parents=True)
    (upper / "etc/cloud/cloud.cfg.d/99-jupyter-init-test.cfg").write_text(CLOUD_CFG)
    # The image's module stack: a module JupyterNotebook that puts Jupyter on PATH, where Lmod looks by default.
    (upper / "etc/lmod/modules").mkdir(parents=True)
    write_module(upper / "etc/lmod/modules", "JupyterNotebook", f'prepend_path("PATH", "{REAL_JUPYTER.parent}")\n')
    # No systemd runs in the namespaces: the examples' --launcher systemd reaches stand-ins first on runcmd's PATH
    # (tests/helpers/systemd.py's, which start the unit's command as its User=). The boot unit it enables and root's
    # kept plan land in the /etc and /var/lib overlays.
    units = root / "transient-units"
    units.mkdir()
    (upper / "usr/local/bin").mkdir(parents=True)
    for name, script in {"systemd-run": FAKE_SYSTEMD_RUN, "systemctl": FAKE_SYSTEMCTL}.items():
        (root / name).write_text(script)
        wrapper = upper / "usr/local/bin" / name
        wrapper.write_text(f'#!/bin/sh\nFAKE_SYSTEMD_DIR={units} exec {sys.executable} {root / name} "$@"\n')
        wrapper.chmod(0o755)
    # pip keeps the settings this machine gives it (an index or a wheel directory of its own), whatever they are.
    machine_pip = {name: value for name, value in os.environ.items() if name.startswith("PIP_")}
    env = {
        **machine_pip,
        "PATH": SYSTEMD_PATH,
        "LANG": "C.UTF-8",
        "HOME": pwd.getpwuid(0).pw_dir,  # cloud-init runs as root, in root's home
        # The examples' pinned name resolves to this checkout's wheel; its dependencies come from the usual index.
        "PIP_FIND_LINKS": " ".join(filter(None, [str(wheels), machine_pip.get("PIP_FIND_LINKS")])),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_ROOT_USER_ACTION": "ignore",
    }
    before = host_state()
    completed = subprocess.run(
        ["unshare", "--mount", "--uts", "--propagation", "private", "bash", "-c", BOOT, "boot", str(root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    boot = Boot(root, values["RESEARCHER"], completed)
    try:
        yield boot
    finally:
        boot.stop()
    assert host_state() == before, "the machine running the tests is as it was"


def verify_signature(body: bytes, signature: str, token: str) -> bool:
    expected = "sha256=" + hmac.new(token.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


@pytest.mark.parametrize("name", ["user-data.yaml", "user-data-standalone.yaml", "user-data-dropin.yaml"])
def test_each_example_brings_a_server_up_under_real_cloud_init(
    name: str, wheels: Path, tmp_path: Path, callbacks: CallbackServer
) -> None:
    token = secrets.token_hex(24)
    values = {
        "RESEARCHER": f"ci{secrets.token_hex(3)}",
        "JUPYTER_TOKEN": token,
        "START_URL": callbacks.url("/start"),
        "COMPLETE_URL": callbacks.url("/complete"),
    }
    # The account runs jupyter-notebook, and through its #! line this Python.
    with traversable(REAL_JUPYTER, Path(sys.executable)), first_boot(EXAMPLES / name, values, wheels, tmp_path) as boot:
        assert boot.completed.returncode == 0, boot.output()
        assert boot.status.get("status") == "done" and not boot.status.get("errors"), (boot.status, boot.output())

        received = [r for r in callbacks.received if r.path in ("/start", "/complete")]
        assert [(r.path, r.form["status"]) for r in received] == [
            ("/start", "init_started"),
            ("/complete", "init_completed"),
        ], boot.output()
        for request in received:
            assert verify_signature(request.body, request.headers["X-Jupyter-Init-Signature"], token)
            assert token not in request.body.decode()

        out = boot.upper(f"home/{values['RESEARCHER']}/.jupyter")
        info = json.loads((out / "jupyter_info.json").read_text())
        assert probe("127.0.0.1", info["port"], token) == 200
        assert probe("127.0.0.1", info["port"], None) == 403
        assert f"Uid:\t{boot.uid}\t" in Path(f"/proc/{info['pid']}/status").read_text()
        for path in out.iterdir():
            if path.name.startswith("jupyter") or path.name.startswith("provisioner"):
                assert path.stat().st_uid == boot.uid, path
                assert stat_mode(path) == 0o600, path
        assert stat_mode(out) == 0o700
        # Root's forms enable the unit that brings the server back at every boot; the researcher's line cannot.
        wanted = boot.upper(
            f"etc/systemd/system/multi-user.target.wants/jupyter-init-boot@{values['RESEARCHER']}.service"
        )
        assert wanted.is_symlink() == (name != "user-data-dropin.yaml")


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def test_the_examples_install_our_own_distribution_pinned_to_this_version() -> None:
    """cloud-init installs as root at every first boot: never a bare name, never someone else's `provisioner`."""
    for example in sorted(EXAMPLES.glob("*.yaml")):
        runcmd = yaml.safe_load(example.read_text())["runcmd"]
        installs = [command for command in runcmd if isinstance(command, list) and command[0].endswith("/pip")]
        assert installs, example
        for install in installs:
            assert re.fullmatch(rf"jupyter-init(\[notebook\])?=={re.escape(__version__)}", install[-1]), install
