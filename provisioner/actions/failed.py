"""failed: leave nothing half-done behind. A server this provisioning started, and never handed over, is stopped."""

from __future__ import annotations

from provisioner import server
from provisioner.context import RunContext, log

REASONS: tuple[str, ...] = ()


def run(ctx: RunContext) -> None:
    if ctx.pid is None or ctx.handed_over:
        return
    if server.stop(ctx.pid, ctx.process, ctx.pid_start, unit=ctx.unit):
        log.info("stopped the server this run started (pid %d)", ctx.pid)
