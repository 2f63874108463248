"""port_check: the port must be free on the bind address (or, with --port auto, pick one that is)."""

from __future__ import annotations

from provisioner import netinfo
from provisioner.context import RunContext
from provisioner.errors import StepFailed

REASONS = ("port_in_use", "failed_to_start")


def run(ctx: RunContext) -> None:
    ip = ctx.settings.ip
    try:
        if ctx.settings.port is None:
            ctx.port = netinfo.pick_free_port(ip)
            return
        port = ctx.settings.port
        if ctx.page is not None and ctx.page.holds(ip, port):
            ctx.port = port  # the progress page holds it for the server, and lets go of it just before it starts
            return
        free = netinfo.port_free(ip, port)
    except OSError as exc:
        raise StepFailed("failed_to_start", f"cannot bind {ip}: {exc.strerror or exc}") from None
    if not free:
        raise StepFailed("port_in_use", f"port {port} is already in use on {ip}")
    ctx.port = port
