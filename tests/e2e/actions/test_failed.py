from __future__ import annotations

import subprocess
from pathlib import Path

from provisioner.actions import failed
from provisioner.context import RunContext


def test_a_server_this_run_started_is_stopped_with_its_group(ctx: RunContext) -> None:
    ctx.process = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60; wait"], start_new_session=True)
    ctx.pid = ctx.process.pid
    failed.run(ctx)
    assert ctx.process.poll() is not None
    # No process left in its group but zombies, which PID 1 may be slow to reap here: they run nothing.
    members = subprocess.run(["pgrep", "-g", str(ctx.pid)], capture_output=True, text=True, check=False).stdout.split()
    assert [pid for pid in members if state(int(pid)) != "Z"] == []


def state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"


def test_a_server_already_handed_over_is_left_alone(ctx: RunContext) -> None:
    ctx.process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    ctx.pid, ctx.handed_over = ctx.process.pid, True
    try:
        failed.run(ctx)
        assert ctx.process.poll() is None
    finally:
        ctx.process.kill()
        ctx.process.wait()
