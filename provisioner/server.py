"""The Jupyter server process: is it alive, stop it with everything it started."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time


def alive(
    pid: int, process: subprocess.Popen[bytes] | None = None, start_time: int | None = None, exe: str | None = None
) -> bool:
    """Whether the server still runs.

    Our own child is polled (and so reaped, not left a zombie that looks alive). Another process is the recorded
    server only if it leads its own process group (the server runs in a session of its own, and its group is what
    stop() signals), runs as us, started at the recorded time and runs the recorded executable: a PID the kernel
    gave to someone else after a reboot, or a record edited to name another process, is not taken for it. Without
    a recorded start time nothing tells it apart, so it is not taken either.
    """
    if process is not None:
        return process.poll() is None
    if pid <= 1 or start_time is None:
        return False
    fields = _stat(pid)
    if fields is None or fields[0] == "Z" or fields[2] != str(pid):
        return False
    if fields[19] != str(start_time):
        return False
    if owner(pid) != os.geteuid():
        return False
    return exe is None or executable(pid) == exe


def executable(pid: int) -> str | None:
    """The program the process runs (for a script, its interpreter), or None if we may not see it."""
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def owner(pid: int) -> int | None:
    """The process's real user id."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


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
    *,
    grace: float = 10.0,
    unit: str | None = None,
    exe: str | None = None,
) -> bool:
    """SIGTERM the server's process group (its kernels too), SIGKILL what is left after `grace` seconds.

    The server runs in a session of its own, so its process group is its PID. A server that systemd runs (`unit`)
    is stopped through systemd, which would otherwise see its service fail. Returns whether it was running. Only a
    process that is the recorded server (see alive) is signalled, and with our own rights.
    """
    if not alive(pid, process, start_time, exe):
        return False
    if unit is not None:
        from provisioner import systemd  # only a server started with --launcher systemd has a unit

        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            systemd.stop_unit(unit, timeout=grace)
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
    with os.scandir("/proc") as entries:  # closed on the early return too
        for entry in entries:
            if entry.name.isdigit():
                fields = _stat(int(entry.name))
                if fields is not None and fields[2] == str(pgid) and fields[0] != "Z":
                    return True
    return False


def _signal_group(pid: int, signum: signal.Signals) -> None:
    if pid <= 1:  # killpg(1) is kill(-1): every process we may signal. Never, whatever a record says.
        return
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass
    except PermissionError:
        with contextlib.suppress(OSError):
            os.kill(pid, signum)
