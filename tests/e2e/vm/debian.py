"""Debian images for the VM tier, built with mmdebstrap from the archive this machine's apt is set up with.

An image is a root file system made into a raw ext4 disk, with the kernel and initramfs beside it (QEMU boots them
with -kernel/-initrd: no boot loader). It is cached under a directory keyed on everything that went into it (suite,
packages, the mirror, the customisation, what was baked in), so that a second run boots without building. What a
platform's image would already hold (a module stack and its Jupyter) is baked in natively, in a chroot: the same
install inside a TCG guest takes minutes.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SUITES = {"11": "bullseye", "12": "bookworm", "13": "trixie"}
PACKAGES = (
    "systemd-sysv,udev,dbus,kmod,linux-image-cloud-amd64,initramfs-tools,zstd,cloud-init,python3,python3-venv,"
    "python3-pip,lmod,sudo,procps,iproute2,netbase,locales,qemu-guest-agent,e2fsprogs"
)
CACHE_ENV = "JUPYTER_INIT_VM_CACHE"
SIZE = "4G"
WHEELS_LABEL = "wheels"
WHEELS_MOUNT = "/srv/wheels"

# Before the kernel is installed, so that its initramfs is built once, able to find a virtio disk holding ext4.
ESSENTIAL_HOOK = (
    'mkdir -p "$1/etc/initramfs-tools/conf.d" && '
    'printf "virtio_pci\\nvirtio_blk\\nvirtio_net\\next4\\n" >> "$1/etc/initramfs-tools/modules" && '
    'echo FSTYPE=ext4 > "$1/etc/initramfs-tools/conf.d/fstype"'
)

# The guest as a platform's image would be, but kept on this machine: no package source (cloud-init's `packages:`
# updates the cache first: with no source that takes a moment), pip pointed at the wheelhouse disk, networking by
# DHCP from QEMU's user-mode network (systemd-networkd: the same on 11, 12 and 13), NoCloud only.
FILES = {
    "etc/fstab": f"/dev/vda / ext4 rw,errors=remount-ro 0 1\nLABEL={WHEELS_LABEL} {WHEELS_MOUNT} ext4 ro,nofail 0 0\n",
    "etc/hostname": "jupyter-vm\n",
    "etc/hosts": "127.0.0.1 localhost\n127.0.1.1 jupyter-vm\n",
    "etc/resolv.conf": "nameserver 10.0.2.3\n",
    "etc/apt/sources.list": "",
    "etc/pip.conf": f"[global]\nno-index = true\nfind-links = {WHEELS_MOUNT}\n",
    "etc/locale.gen": "en_US.UTF-8 UTF-8\nC.UTF-8 UTF-8\n",
    "etc/systemd/network/20-dhcp.network": "[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n",
    "etc/cloud/cloud.cfg.d/90-vm-tier.cfg": "datasource_list: [ NoCloud, None ]\nnetwork: {config: disabled}\n",
}


@dataclass(frozen=True)
class Image:
    """A built image: its disk (never written to: each boot gets an overlay), kernel and initramfs."""

    release: str  # 11, 12, 13
    disk: Path
    kernel: Path
    initrd: Path
    python: str  # the image's python3, X.Y


def mirror() -> str:
    """The Debian archive apt is set up with here (deb822 sources or a sources.list line), not a host of ours."""
    sources = Path("/etc/apt/sources.list.d")
    for path in sorted(sources.glob("*.sources")) if sources.is_dir() else []:
        for stanza in path.read_text().split("\n\n"):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if uris and suites and not any(s.endswith("-security") for s in suites.group(1).split()):
                return uris.group(1)
    listed = Path("/etc/apt/sources.list")
    for line in listed.read_text().splitlines() if listed.exists() else []:
        words = line.split()
        if words[:1] == ["deb"] and len(words) >= 3 and "security" not in line:
            return next(word for word in words[1:] if "://" in word)
    raise RuntimeError("no Debian archive in this machine's apt sources")


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "jupyter-init" / "vm")


def build(release: str, bake: Callable[[Path], None] | None = None, bake_key: str = "") -> Image:
    """The image of Debian `release`, from the cache or built now; `bake` adds what a platform's image holds."""
    suite = SUITES[release]
    archive = mirror()
    key = hashlib.sha256(
        "\0".join([suite, PACKAGES, archive, ESSENTIAL_HOOK, repr(sorted(FILES.items())), bake_key]).encode()
    ).hexdigest()[:16]
    where = cache_root() / f"debian-{release}-{key}"
    if not (where / "done").exists():
        _build(where, suite, archive, bake)
    return Image(
        release,
        where / "root.img",
        where / "vmlinuz",
        where / "initrd.img",
        (where / "python").read_text().strip(),
    )


def _build(where: Path, suite: str, archive: str, bake: Callable[[Path], None] | None) -> None:
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    with tempfile.TemporaryDirectory(dir=where) as scratch:
        root = Path(scratch) / "root"
        subprocess.run(
            [
                "mmdebstrap",
                "--quiet",
                "--variant=minbase",
                "--mode=root",
                f"--include={PACKAGES}",
                f"--essential-hook={ESSENTIAL_HOOK}",
                suite,
                str(root),
                f"deb {archive} {suite} main",
            ],
            check=True,
            stdin=subprocess.DEVNULL,
        )
        for name, text in FILES.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_symlink():
                path.unlink()
            path.write_text(text)
        chroot(root, "locale-gen")
        chroot(root, "systemctl", "enable", "systemd-networkd.service")
        (root / WHEELS_MOUNT.lstrip("/")).mkdir(parents=True, exist_ok=True)
        if bake is not None:
            bake(root)
        python = chroot(root, "python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])").strip()
        [kernel] = sorted((root / "boot").glob("vmlinuz-*"))
        [initrd] = sorted((root / "boot").glob("initrd.img-*"))
        shutil.copyfile(kernel, where / "vmlinuz")
        shutil.copyfile(initrd, where / "initrd.img")
        subprocess.run(
            ["mkfs.ext4", "-q", "-F", "-L", "root", "-d", str(root), str(where / "root.img"), SIZE],
            check=True,
            capture_output=True,
        )
    (where / "python").write_text(python + "\n")
    (where / "done").write_text("")


def chroot(root: Path, *command: str) -> str:
    return subprocess.run(
        ["chroot", str(root), *command],
        check=True,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
    ).stdout


def wheels_disk(wheelhouse: Path, disk: Path) -> Path:
    """The wheelhouse as a small read-only ext4 disk, labelled for the image's fstab."""
    command = ["mkfs.ext4", "-q", "-F", "-L", WHEELS_LABEL, "-d", str(wheelhouse), str(disk), "1G"]
    subprocess.run(command, check=True, capture_output=True)
    return disk
