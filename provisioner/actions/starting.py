"""starting: launch jupyter-notebook detached, its output in jupyter.log, the token in its environment only."""

from __future__ import annotations

import os
import subprocess
import time
from datetime import datetime, timezone

from provisioner import actions, files, netinfo, proof, server, systemd, tls
from provisioner.context import RunContext
from provisioner.errors import StepFailed
from provisioner.jupyter import BESIDE, base_environment, find_jupyter, program
from provisioner.output import log

REASONS = ("failed_to_start", "output_unwritable")


def command(ctx: RunContext) -> list[str]:
    """The server's command line. It never holds the token: that is in JUPYTER_TOKEN."""
    assert ctx.jupyter is not None and ctx.port is not None, "run() fills them in"
    argv = [
        str(ctx.jupyter),
        "--no-browser",
        f"--ip={ctx.settings.ip}",
        f"--port={ctx.port}",
        # Otherwise Jupyter silently binds the next free port and every URL we report is wrong.
        "--ServerApp.port_retries=0",
    ]
    settings = ctx.settings
    if settings.notebook_dir is not None:
        argv.append(f"--ServerApp.root_dir={settings.notebook_dir}")
    if settings.base_url != "/":
        argv.append(f"--ServerApp.base_url={settings.base_url}")
    if settings.idle_timeout:
        # Jupyter's own culling: idle kernels go, then the idle server itself, so an idle VM stops costing money.
        argv += [
            f"--ServerApp.shutdown_no_activity_timeout={settings.idle_timeout}",
            f"--MappingKernelManager.cull_idle_timeout={settings.idle_timeout}",
            f"--MappingKernelManager.cull_interval={min(60, settings.idle_timeout)}",
        ]
    if ctx.certificate is not None:
        argv += [
            f"--ServerApp.certfile={ctx.certificate.certfile}",
            f"--ServerApp.keyfile={ctx.certificate.keyfile}",
        ]
    if ctx.server_runs_as_root:
        argv.append("--allow-root")
    return argv


def _prerequisites(ctx: RunContext) -> None:
    """What loading and port_check find, for a definition that leaves them out: the PATH's Jupyter, the given port."""
    if ctx.jupyter is None:
        ctx.env = ctx.env or base_environment(ctx.settings)
        ctx.jupyter = find_jupyter(ctx.env, "", program(ctx.settings))
        if ctx.jupyter is None:
            raise StepFailed("failed_to_start", f"{program(ctx.settings)} is not on PATH nor in {BESIDE}")
    if ctx.port is None:
        ctx.port = ctx.settings.port or netinfo.pick_free_port(ctx.settings.ip)
    if ctx.certificate is None:  # the progress page may have made it already: the server shows the same one
        try:
            ctx.certificate = tls.of_run(ctx.settings, ctx.vm_ip)
        except tls.TLSError as exc:
            raise StepFailed("failed_to_start", str(exc)) from None


def run(ctx: RunContext) -> None:
    if ctx.unrecordable is not None:
        # The record stopped being writable since validating (a full disk): a server started now could be lost.
        raise StepFailed("output_unwritable", ctx.unrecordable)
    _prerequisites(ctx)
    argv = command(ctx)
    if ctx.server_runs_as_root:
        log.warning("warning: running Jupyter as root; give --user NAME, or run jupyter-init as the VM's user")
    try:
        # A link or a FIFO planted as the log fails here: it is not appended to, nor waited on.
        fd = files.open_regular(ctx.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    except OSError as exc:
        raise StepFailed("output_unwritable", f"cannot open {ctx.log_path}: {exc.strerror or exc}") from None
    try:
        os.fchmod(fd, 0o600)
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        os.write(fd, f"--- jupyter-init: starting {program(ctx.settings)} on port {ctx.port} at {stamp}\n".encode())
    except OSError as exc:
        os.close(fd)
        raise StepFailed("output_unwritable", f"cannot write {ctx.log_path}: {exc.strerror or exc}") from None
    if ctx.page is not None:
        _prove(ctx)
        ctx.page.close()  # the port is the server's from here: the page's script polls through the gap
    try:
        if ctx.settings.launcher == "systemd":
            _launch_unit(ctx, argv)
        else:
            _spawn(ctx, argv, fd)
    except OSError as exc:
        raise StepFailed("failed_to_start", f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    ctx.server_started = time.monotonic()
    if ctx.settings.tls == "self-signed" and ctx.certificate is not None:
        tls.forget_others(ctx.out, ctx.certificate)  # an earlier run's, whose server was stopped before this one


def _prove(ctx: RunContext) -> None:
    """Make the server show the page's proof (provisioner.proof). Without it a tab is never sent the token by the
    page: it asks for a reload by hand, so a run goes on without it."""
    try:
        ctx.proof_config = proof.install(ctx.out)
    except OSError as exc:
        log.warning(
            "warning: the server cannot be made to show the progress page's proof (%s): an open tab will ask for a "
            "reload by hand",
            exc.strerror or exc,
        )


# Reads one line from its stdin, a pipe from us, and becomes the server (stdin /dev/null) only if it is "go": if we
# die before saying it (SIGKILL between the fork and the record), the pipe closes, the read ends, and no server is
# left that no record names.
GATE = 'read -r go; [ "$go" = go ] && exec "$@" </dev/null'


def _spawn(ctx: RunContext, argv: list[str], log_fd: int) -> None:
    """Start the server, recorded before it may run: the record is the only handle on it (stop, resume, run)."""
    gate, go = os.pipe()
    try:
        ctx.process = subprocess.Popen(
            ["/bin/sh", "-c", GATE, "jupyter-gate", *argv],
            stdin=gate,
            stdout=log_fd,
            stderr=subprocess.STDOUT,
            env=ctx.server_env(),
            cwd=ctx.settings.home,
            # Its own session: it outlives us and the login shell that ran us, and stop() can signal its group.
            start_new_session=True,
        )
    finally:
        os.close(gate)
    ctx.pid = ctx.process.pid
    ctx.pid_start = server.start_time(ctx.pid)
    problem = ctx.record()
    try:
        if problem is None:
            os.write(go, b"go\n")
    finally:
        os.close(go)
    if problem is not None:
        ctx.process.wait()
        ctx.pid = ctx.process = None
        raise StepFailed("output_unwritable", problem)


def _launch_unit(ctx: RunContext, argv: list[str]) -> None:
    assert ctx.port is not None, "_prerequisites chose it"
    settings = ctx.settings
    try:
        ctx.unit, ctx.pid = systemd.launch(
            ctx.port, argv, env=ctx.server_env(), log=ctx.log_path, home=settings.home, out=ctx.out, user=settings.user
        )
    except OSError as exc:
        raise StepFailed("failed_to_start", f"cannot start a systemd unit: {exc.strerror or exc}") from None
    ctx.pid_start = server.start_time(ctx.pid)
    problem = ctx.record()
    if problem is not None:  # systemd runs it at once: a unit no record names is stopped again
        actions.stop_unfinished(ctx)
        ctx.pid = None
        raise StepFailed("output_unwritable", problem)
