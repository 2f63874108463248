"""failed: leave nothing half-done behind. A server this provisioning started, and never handed over, is stopped."""

from __future__ import annotations

from provisioner import actions
from provisioner.context import RunContext

REASONS: tuple[str, ...] = ()


def run(ctx: RunContext) -> None:
    actions.stop_unfinished(ctx)
