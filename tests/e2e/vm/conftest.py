"""The VM tier: the examples booted for real in Debian guests (see tests/e2e/vm/debian.py and tests/e2e/vm/qemu.py)."""

from __future__ import annotations

import contextlib
import re
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.vm import debian, wheelhouse
from tests.e2e.vm.qemu import RECEIVER_ADDRESS, VM
from tests.helpers.constants import CHECKOUT
from tests.helpers.net import free_port
from tests.helpers.receiver import CallbackServer, serving

RESEARCHER = "alice"
TOKEN = "vm-" + secrets.token_hex(20)  # a new one per test session: nothing of an earlier run can answer for it
BOOT_TIMEOUT = 900.0  # seconds from QEMU's start to init_completed, under TCG, installing at boot
TOOLS = ("mmdebstrap", "qemu-system-x86_64", "qemu-img", "cloud-localds", "socat", "mkfs.ext4")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.vm)


@pytest.fixture(scope="session", autouse=True)
def _tools() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"the VM tier needs {', '.join(missing)}; scripts/install-test-prerequisites.sh installs them")


def filled(example: str, token: str = TOKEN) -> str:
    """An example's user-data with its placeholders filled in, as a platform fills them in."""
    text = (CHECKOUT / "examples" / "cloud-init" / example).read_text()
    for name, value in {
        "RESEARCHER": RESEARCHER,
        "JUPYTER_TOKEN": token,
        "START_URL": f"http://{RECEIVER_ADDRESS}/start",
        "COMPLETE_URL": f"http://{RECEIVER_ADDRESS}/complete",
    }.items():
        text = text.replace("${" + name + "}", value)
    assert not re.search(r"\$\{[A-Z_]+\}", text), "a placeholder the test does not know"
    return text


def module_stack(seconds: int = 0) -> tuple[Callable[[Path], None], str]:
    """What a platform's image with a module stack holds: Lmod (in every image) and a module JupyterNotebook that
    puts a venv's Jupyter on PATH, taking `seconds` to load (a cold CernVM-FS). Baked natively into the root file
    system, with the wheelhouse of the image's Python."""

    def bake(root: Path) -> None:
        python = debian.chroot(root, "python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])").strip()
        house = wheelhouse.for_python(python, root.parent / "bake")
        shutil.copytree(house, root / "tmp" / "wheels")
        debian.chroot(root, "python3", "-m", "venv", "/opt/jupyter-notebook")
        debian.chroot(
            root,
            "/opt/jupyter-notebook/bin/pip",
            "install",
            "--quiet",
            "--no-index",
            "--find-links",
            "/tmp/wheels",
            "notebook",
        )
        shutil.rmtree(root / "tmp" / "wheels")
        modules = root / "etc" / "lmod" / "modules"
        modules.mkdir(parents=True, exist_ok=True)
        wait = f'os.execute("sleep {seconds}")\n' if seconds else ""
        (modules / "JupyterNotebook.lua").write_text(f'{wait}prepend_path("PATH", "/opt/jupyter-notebook/bin")\n')

    return bake, f"module-stack-{seconds}"


@dataclass
class Booted:
    vm: VM
    callbacks: CallbackServer
    port: int  # the host's end of the forward to the guest's 8008


@contextlib.contextmanager
def booted(
    tmp_path: Path, release: str, user_data: str, bake: tuple[Callable[[Path], None], str] | None = None
) -> Iterator[Booted]:
    """A guest of Debian `release` booting `user_data` (NoCloud), its callbacks going to a receiver on the host."""
    image = debian.build(release, *(bake or (None, "")))
    house = wheelhouse.for_python(image.python, tmp_path)
    wheels = debian.wheels_disk(house, tmp_path / "wheels.img")
    seed_dir = tmp_path / "seed"
    seed_dir.mkdir()
    (seed_dir / "user-data").write_text(user_data)
    (seed_dir / "meta-data").write_text(f"instance-id: iid-{secrets.token_hex(4)}\nlocal-hostname: jupyter-vm\n")
    seed = tmp_path / "seed.iso"
    subprocess.run(["cloud-localds", str(seed), str(seed_dir / "user-data"), str(seed_dir / "meta-data")], check=True)
    with serving() as callbacks:
        vm = VM(image, tmp_path, seed, wheels, free_port(), callbacks.server.server_address[1])
        try:
            vm.boot()
            yield Booted(vm, callbacks, vm.host_port)
        except BaseException:
            print(f"guest console, last lines: {vm.tail(40)}")
            raise
        finally:
            vm.kill()
