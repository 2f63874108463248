"""The server process: alive only while it is the recorded one, and stopped with everything it started.

A `sh` that starts a child of its own stands in for Jupyter and a kernel: what matters here is the process group."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from provisioner import server

WITH_KERNEL = "sleep 300 & wait"  # the leader, and a child in its group, as a server with a kernel
DEAF = "trap '' TERM; sleep 300 & while :; do wait; done"  # ignores SIGTERM: only SIGKILL ends it


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def launch(started: list[subprocess.Popen[bytes]], script: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(["sh", "-c", script], start_new_session=True)
    started.append(process)
    deadline = time.monotonic() + 10
    while len(group(process.pid)) < 2 and time.monotonic() < deadline:  # the child is in the group
        time.sleep(0.01)
    return process


def group(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[2] == str(pgid) and fields[0] != "Z":
                members.append(int(entry))
    return members


def test_stopping_ends_the_whole_group_the_kernels_too(started: list[subprocess.Popen[bytes]]) -> None:
    process = launch(started, WITH_KERNEL)
    start = server.start_time(process.pid)
    assert server.alive(process.pid, start_time=start)
    assert server.stop(process.pid, start_time=start, grace=5) is True
    assert group(process.pid) == []
    assert not server.alive(process.pid, start_time=start)


def test_a_server_deaf_to_sigterm_is_killed_after_the_grace_time(started: list[subprocess.Popen[bytes]]) -> None:
    process = launch(started, DEAF)
    assert server.stop(process.pid, process, server.start_time(process.pid), grace=0.5) is True
    assert process.poll() is not None and group(process.pid) == []


def test_a_process_that_is_not_the_recorded_server_is_not_taken_for_it_nor_signalled(
    started: list[subprocess.Popen[bytes]],
) -> None:
    process = launch(started, WITH_KERNEL)
    start = server.start_time(process.pid)
    assert start is not None
    # Another start time: the PID was given to another process since (a reboot, a record edited to name it).
    assert not server.alive(process.pid, start_time=start + 1)
    assert server.stop(process.pid, start_time=start + 1, grace=1) is False
    # No start time recorded: nothing tells it apart, so it is not taken either.
    assert not server.alive(process.pid)
    assert server.stop(process.pid, grace=1) is False
    # Another program than the one recorded.
    assert not server.alive(process.pid, start_time=start, exe="/usr/bin/not-this-one")
    assert process.poll() is None and len(group(process.pid)) == 2


def test_pid_1_and_below_are_never_signalled() -> None:
    assert server.stop(1, start_time=server.start_time(1), grace=0) is False
    assert server.stop(0, start_time=0, grace=0) is False
    assert server.stop(-1, start_time=0, grace=0) is False
