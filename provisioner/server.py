"""The Jupyter server process: is it alive, stop it with everything it started."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time


def alive(pid: int, process: subprocess.Popen[bytes] | None = None, start_time: int | None = None) -> bool:
    """Whether the server still runs.

    Our own child is polled (and so reaped, not left a zombie that looks alive); another process is ours only if its
    start time is the one recorded, so that a PID the kernel gave to someone else after a reboot is not mistaken for it.
    """
    if process is not None:
        return process.poll() is None
    fields = _stat(pid)
    if fields is None or fields[0] == "Z":
        return False
    return start_time is None or fields[19] == str(start_time)


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat from the field after the command name (which may hold spaces and parentheses)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields if len(fields) > 19 else None


def stop(
    pid: int,
    process: subprocess.Popen[bytes] | None = None,
    start_time: int | None = None,
    grace: float = 10.0,
    unit: str | None = None,
) -> bool:
    """SIGTERM the server's process group (its kernels too), SIGKILL what is left after `grace` seconds.

    The server runs in a session of its own, so its process group is its PID. A server that systemd runs (`unit`)
    is stopped through systemd, which would otherwise see its service fail. Returns whether it was running.
    """
    if not alive(pid, process, start_time):
        return False
    if unit is not None:
        from provisioner import systemd  # only a server started with --launcher systemd has a unit

        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            systemd.systemctl("stop", unit, timeout=grace)
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _group_alive(pid, process) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _group_alive(pid, process):
        _signal_group(pid, signal.SIGKILL)
        while _group_alive(pid, process) and time.monotonic() < deadline + 5:
            time.sleep(0.05)
    return True


def _group_alive(pgid: int, process: subprocess.Popen[bytes] | None) -> bool:
    """Whether the leader or any process of its group (a kernel, say) is still running."""
    if process is not None:
        process.poll()  # reap our own child, so that it does not linger as a zombie
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and fields[2] == str(pgid) and fields[0] != "Z":
                return True
    return False


def _signal_group(pid: int, signum: signal.Signals) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, signum)
