"""--launcher systemd: the server as a transient systemd unit, supervised by systemd rather than left detached.

The unit gets the server's whole environment, token included, from an environment file (0400) that systemd reads as
root, so the token is on no command line; NoNewPrivileges; its output appended to jupyter.log. The same file serves
examples/systemd/jupyter-notebook@.service, the unit that brings the server back after a reboot.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

from provisioner.context import RunContext, log
from provisioner.errors import StepFailed

ENV_FILE = "jupyter.env"
COMMAND_TIMEOUT = 30.0


def unit_name(ctx: RunContext) -> str:
    who = ctx.settings.user.name if ctx.settings.user else str(os.geteuid())
    return "jupyter-notebook-" + re.sub(r"[^A-Za-z0-9_.-]", "_", f"{who}-{ctx.port}") + ".service"


def manager() -> list[str]:
    """Which systemd: as root the system's; otherwise the user's own (`--user`), where an unprivileged unit goes."""
    return [] if os.geteuid() == 0 else ["--user"]


def systemctl(*args: str, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemctl", *manager(), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def _quote(value: str) -> str:
    """A value as systemd's environment files read it back: in double quotes, with \\ " ` $ escaped."""
    return '"' + re.sub(r'([\\"`$])', r"\\\1", value) + '"'


def write_env_file(ctx: RunContext, argv: list[str]) -> Path:
    """The server's environment, token included, in a file only its owner can read (0400)."""
    path = ctx.out / ENV_FILE
    lines = []
    for key, value in sorted(ctx.server_env().items()):
        if "\n" in value or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            log.warning("warning: %s cannot go into a systemd environment file; the server runs without it", key)
            continue
        lines.append(f"{key}={_quote(value)}\n")
    # For examples/systemd/jupyter-notebook@.service, which starts the same server at boot from this file.
    lines.append(f"PROVISIONER_JUPYTER_ARGS={_quote(' '.join(argv[1:]))}\n")
    path.unlink(missing_ok=True)  # a 0400 file cannot be rewritten in place
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o400)
    try:
        if ctx.settings.owner is not None:
            os.fchown(fd, *ctx.settings.owner)
        os.write(fd, "".join(lines).encode())
    finally:
        os.close(fd)
    return path


def properties(ctx: RunContext, env_file: Path) -> list[tuple[str, str]]:
    """The unit's settings, for systemd-run's --property and for unit_file() alike."""
    settings = ctx.settings
    props = [
        ("Description", "Jupyter Notebook server (provisioner)"),
        ("WorkingDirectory", str(settings.home)),
        ("NoNewPrivileges", "yes"),
        ("EnvironmentFile", str(env_file)),
        ("StandardOutput", f"append:{ctx.log_path}"),
        ("StandardError", f"append:{ctx.log_path}"),
        ("KillMode", "control-group"),  # stopping the unit stops the kernels too
    ]
    if not manager() and settings.user is not None:
        props += [("User", str(settings.user.uid)), ("Group", str(settings.user.gid))]
    return props


def run_command(ctx: RunContext, argv: list[str], env_file: Path) -> list[str]:
    """The systemd-run command line for the server: everything but the token, which is in `env_file`."""
    command = [
        "systemd-run",
        *manager(),
        "--quiet",
        "--collect",
        f"--unit={unit_name(ctx)}",
    ]
    command += [f"--property={key}={value}" for key, value in properties(ctx, env_file)]
    return [*command, "--", *argv]


def unit_file(ctx: RunContext, argv: list[str], env_file: Path) -> str:
    """The transient unit as a unit file, so that `systemd-analyze verify` can check what systemd-run asks for."""
    lines = [f"{key}={value}" for key, value in properties(ctx, env_file)]
    return "[Service]\n" + "\n".join([*lines, "ExecStart=" + shlex.join(argv)]) + "\n"


def launch(ctx: RunContext, argv: list[str]) -> int:
    """Start the server as a transient unit; return its main PID."""
    command = run_command(ctx, argv, write_env_file(ctx, argv))
    try:
        started = subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
        if started.returncode != 0:
            raise StepFailed("failed_to_start", f"systemd-run failed: {started.stderr.strip() or started.returncode}")
        shown = systemctl("show", "--property=MainPID", "--value", unit_name(ctx))
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StepFailed("failed_to_start", f"cannot start a systemd unit: {exc}") from None
    pid = int(shown.stdout.strip() or 0) if shown.stdout.strip().isdigit() else 0
    if pid == 0:
        raise StepFailed("failed_to_start", f"{unit_name(ctx)} has no running process: see {ctx.log_path}")
    ctx.unit = unit_name(ctx)
    return pid
