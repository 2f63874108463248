"""The Jupyter server process: is it alive, stop it with everything it started."""

from __future__ import annotations

import os
import signal
import subprocess
import time


def alive(pid: int, process: subprocess.Popen[bytes] | None = None) -> bool:
    """Whether the server still runs (our own child is reaped, not left a zombie that looks alive)."""
    if process is not None:
        return process.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def stop(pid: int, process: subprocess.Popen[bytes] | None = None, grace: float = 10.0) -> bool:
    """SIGTERM the server's process group (its kernels too), SIGKILL after `grace` seconds; True if it was running.

    The server runs in a session of its own, so its process group is its PID.
    """
    if not alive(pid, process):
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive(pid, process) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid, process):
        _signal_group(pid, signal.SIGKILL)
        while alive(pid, process) and time.monotonic() < deadline + 5:
            time.sleep(0.05)
    return True


def _signal_group(pid: int, signum: signal.Signals) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, signum)
