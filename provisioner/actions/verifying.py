"""verifying: the server answers /api/status with the token, refuses without it, and is still our process."""

from __future__ import annotations

import contextlib
import subprocess
import time

from provisioner import files, netinfo, proof, server
from provisioner.context import RunContext
from provisioner.errors import StepFailed
from provisioner.jupyter import program
from provisioner.output import log
from provisioner.probe import accepts, exchange, probe

REASONS = ("failed_to_start", "port_in_use")
FIRST_INTERVAL = 0.01
MAX_INTERVAL = 0.025  # the port opens a few ms before the first 200: a late poll is time lost


def run(ctx: RunContext) -> None:
    if ctx.pid is None or ctx.port is None:
        raise StepFailed("failed_to_start", "there is no server to verify: no state before verifying started one")
    host = netinfo.local_host(ctx.settings.ip)
    token = ctx.settings.token.reveal() if ctx.settings.token is not None else None
    pin = ctx.certificate.fingerprint if ctx.certificate is not None else None
    deadline = (ctx.server_started or time.monotonic()) + ctx.settings.timeout
    interval = FIRST_INTERVAL
    while True:
        if not server.alive(ctx.pid, ctx.process, ctx.pid_start):
            raise _exited(ctx)
        # The token goes only to our own server: another account could listen on the port before Jupyter does. Who
        # listens is looked up only once something accepts: polled while the server starts, the lookup alone used a
        # fifth of a core beside it.
        answered = (
            accepts(host, ctx.port)
            and netinfo.listens(ctx.pid, ctx.port)
            and probe(host, ctx.port, token, ctx.settings.base_url, pin=pin)
        )
        if answered == 200:
            ctx.pid_exe = server.executable(ctx.pid)
            break
        if time.monotonic() >= deadline:
            raise StepFailed(
                "failed_to_start", f"no answer on port {ctx.port} within {ctx.settings.timeout:g}s", _log_tail(ctx)
            )
        _wait(ctx, min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 1.5, MAX_INTERVAL)
    refused = probe(host, ctx.port, None, ctx.settings.base_url, pin=pin)
    if refused != 403:
        raise StepFailed(
            "failed_to_start", f"the server answered {refused} without the token instead of 403: authentication is off"
        )
    if ctx.page is not None and ctx.proof_config is not None:
        _check_proof(ctx, host, pin, ctx.page.tab.proof)


def _check_proof(ctx: RunContext, host: str, pin: str | None, value: str) -> None:
    """Whether the server shows the page's proof, as a tab asks for it: without it, the tab never opens the server by
    itself (a configuration of the site's or the account's that replaces Jupyter's headers, loaded after ours)."""
    assert ctx.port is not None
    head = exchange(host, ctx.port, f"{ctx.settings.base_url}api", None, pin=pin) or b""
    fields = [line.partition(b":") for line in head.split(b"\r\n")]
    name = proof.HEADER.lower().encode()
    if not any(key.strip().lower() == name and got.strip() == value.encode() for key, _, got in fields):
        log.warning(
            "warning: the server does not show the progress page's proof (%s): an open tab asks for a reload by hand",
            proof.HEADER,
        )


def _wait(ctx: RunContext, seconds: float) -> None:
    """Sleep, but wake the moment our own server exits: a crash is reported at once, not at the next poll."""
    if ctx.process is None:
        time.sleep(seconds)
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        ctx.process.wait(timeout=seconds)


def _exited(ctx: RunContext) -> StepFailed:
    code = ctx.process.returncode if ctx.process is not None else None
    tail = files.tail(ctx.log_path, lines=20)
    if any("is not available" in line or "is already in use" in line for line in tail):
        return StepFailed("port_in_use", f"port {ctx.port} was taken before the server could bind it")
    status = f" with code {code}" if code is not None else ""
    return StepFailed("failed_to_start", f"{program(ctx.settings)} exited{status}", _log_tail(ctx))


def _log_tail(ctx: RunContext) -> str:
    lines = files.tail(ctx.log_path, lines=3)
    return f"; last lines of {ctx.log_path}: " + " | ".join(lines) if lines else ""
