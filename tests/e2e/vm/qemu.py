"""One Debian guest under QEMU, kept on this machine: user-mode networking with restrict=on, a forward from the host's
loopback to the guest's Jupyter port, and one from the guest to a receiver on the host's loopback.

TCG, not KVM: this machine's /dev/kvm (when there is one) is a paravirtual one that cannot run a stock Debian kernel
(see ../shared/FACTS.md). Commands run in the guest through the QEMU guest agent (a virtio serial port), so the guest
needs no ssh and no account of ours. Powered off cleanly through the monitor (ACPI), or reset hard.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.vm.debian import Image

GUEST_PORT = 8008  # the spec's port: the examples' servers listen there
RECEIVER_ADDRESS = "10.0.2.100"  # the guest's name for the receiver on the host (guestfwd)


@dataclass
class Ran:
    code: int
    out: str
    err: str


class VM:
    """A guest booted from an overlay of `image` (the image stays pristine), with a NoCloud seed and the wheelhouse."""

    def __init__(self, image: Image, work: Path, seed: Path, wheels: Path, host_port: int, receiver_port: int):
        self.image, self.work = image, work
        self.overlay = work / "disk.qcow2"
        self.seed, self.wheels = seed, wheels
        self.host_port, self.receiver_port = host_port, receiver_port
        self.monitor_path, self.agent_path = work / "monitor.sock", work / "agent.sock"
        self.serial = work / "serial.log"
        self.process: subprocess.Popen[bytes] | None = None
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(image.disk), str(self.overlay)],
            check=True,
        )

    def command(self) -> list[str]:
        forward = (
            f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{self.host_port}-:{GUEST_PORT},"
            f"guestfwd=tcp:{RECEIVER_ADDRESS}:80-cmd:{shutil.which('socat')} STDIO TCP:127.0.0.1:{self.receiver_port}"
        )
        return [
            *("qemu-system-x86_64", "-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "2", "-m", "2048"),
            *("-display", "none", "-no-user-config", "-nodefaults"),
            *("-kernel", str(self.image.kernel), "-initrd", str(self.image.initrd)),
            *("-append", "root=/dev/vda rw console=ttyS0 net.ifnames=1"),
            *("-drive", f"file={self.overlay},if=virtio,format=qcow2"),
            *("-drive", f"file={self.seed},if=virtio,format=raw,readonly=on"),
            *("-drive", f"file={self.wheels},if=virtio,format=raw,readonly=on"),
            *("-netdev", forward, "-device", "virtio-net-pci,netdev=n0"),
            *("-chardev", f"socket,id=agent,path={self.agent_path},server=on,wait=off"),
            *("-device", "virtio-serial", "-device", "virtserialport,chardev=agent,name=org.qemu.guest_agent.0"),
            *("-monitor", f"unix:{self.monitor_path},server=on,wait=off", "-serial", f"file:{self.serial}"),
        ]

    def boot(self) -> None:
        with self.serial.open("ab") as serial:
            serial.write(b"\n--- boot\n")
        with (self.work / "qemu.err").open("ab") as errors:
            self.process = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors
            )

    def monitor(self, line: str) -> None:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(str(self.monitor_path))
            sock.sendall(line.encode() + b"\n")
            time.sleep(0.5)

    def power_off(self, timeout: float = 120) -> None:
        """A clean ACPI power-off, as a researcher's `poweroff` or a cloud's stop: the guest shuts down, QEMU ends."""
        assert self.process is not None
        self.monitor("system_powerdown")
        self.process.wait(timeout=timeout)
        self.process = None

    def reset(self) -> None:
        """A hard reset: no shutdown, the guest starts again at once (as a host crash would restart it)."""
        self.monitor("system_reset")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def run(self, script: str, timeout: float = 120) -> Ran:
        """`sh -c script` in the guest, as root, through the guest agent."""
        started = self._agent("guest-exec", {"path": "/bin/sh", "arg": ["-c", script], "capture-output": True})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self._agent("guest-exec-status", {"pid": started["pid"]})
            if status.get("exited"):
                return Ran(
                    int(str(status.get("exitcode", -1))), _decoded(status, "out-data"), _decoded(status, "err-data")
                )
            time.sleep(0.2)
        raise TimeoutError(f"{script!r} did not end in {timeout} s in the guest")

    def write_file(self, path: str, data: bytes) -> None:
        """Write a file in the guest (root's, 0600 by umask) through the agent's file calls: its content is on no
        command line, and the agent logs only the path (guest-exec logs its whole command in the journal)."""
        self.run(f"umask 077 && : > {path}")
        handle = self._agent("guest-file-open", {"path": path, "mode": "w"})
        try:
            self._agent("guest-file-write", {"handle": handle, "buf-b64": base64.b64encode(data).decode()})
        finally:
            self._agent("guest-file-close", {"handle": handle})

    def wait_for_agent(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, TimeoutError, ValueError):
                self._agent("guest-ping", {}, timeout=5)
                return
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"QEMU exited with {self.process.returncode}: {self.tail()}")
            time.sleep(1)
        raise TimeoutError(f"the guest agent did not answer in {timeout} s; the console ends: {self.tail()}")

    def _agent(self, command: str, arguments: dict[str, object], timeout: float = 30) -> Any:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(timeout)
            sock.connect(str(self.agent_path))
            # guest-sync first: whatever an earlier client left unread on the port is skipped up to its answer.
            token = int(time.monotonic() * 1000) % 2**31
            sock.sendall(json.dumps({"execute": "guest-sync", "arguments": {"id": token}}).encode() + b"\n")
            reader = sock.makefile("rb")
            while json.loads(reader.readline() or b"{}").get("return") != token:
                pass
            sock.sendall(json.dumps({"execute": command, "arguments": arguments}).encode() + b"\n")
            answer = json.loads(reader.readline() or b"{}")
        if "error" in answer:
            raise ValueError(f"guest agent {command}: {answer['error']}")
        return answer.get("return", {})

    def tail(self, lines: int = 15) -> str:
        text = self.serial.read_text(errors="replace") if self.serial.exists() else ""
        return " | ".join(text.strip().splitlines()[-lines:])


def _decoded(status: dict[str, object], name: str) -> str:
    return base64.b64decode(str(status.get(name, ""))).decode(errors="replace")
