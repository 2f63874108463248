from __future__ import annotations

import subprocess

from provisioner.actions import failed
from provisioner.context import RunContext


def test_a_server_this_run_started_is_stopped_with_its_group(ctx: RunContext) -> None:
    ctx.process = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60; wait"], start_new_session=True)
    ctx.pid = ctx.process.pid
    failed.run(ctx)
    assert ctx.process.poll() is not None
    leftovers = subprocess.run(["pgrep", "-g", str(ctx.pid)], capture_output=True, check=False)
    assert leftovers.returncode == 1  # no process left in its group


def test_a_server_already_handed_over_is_left_alone(ctx: RunContext) -> None:
    ctx.process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    ctx.pid, ctx.handed_over = ctx.process.pid, True
    try:
        failed.run(ctx)
        assert ctx.process.poll() is None
    finally:
        ctx.process.kill()
        ctx.process.wait()
