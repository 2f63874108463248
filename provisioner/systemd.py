"""--launcher systemd: the server as a transient systemd unit, supervised by systemd rather than left detached.

The unit gets the server's whole environment, token included, from an environment file (0400), so the token is on no
command line; NoNewPrivileges; its output appended to jupyter.log. systemd reads the environment file, and would open
a `StandardOutput=` file, as root before it switches to `User=`: so as root the environment file lives in a directory
only root can use (/var/lib/provisioner), never in the user's, and the log is opened by a shell running as the user.

As root for another account, the worker asks the monitor (privsep) to start and stop the unit: the unit runs as that
account (User=), under a name of the account's, and the monitor stops no other. After a reboot, the boot unit
(provisioner.boot) starts it again the same way.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

from provisioner import privsep
from provisioner.values import Account

ENV_FILE = "jupyter.env"  # in the output directory, for a user's own systemd (--user manager)
SYSTEM_DIR = Path("/var/lib/provisioner")  # as root: <account>.env here, a directory only root can use
SYSTEM_DIR_ENV = "PROVISIONER_SYSTEM_DIR"  # root's own environment may move it (the tests do)
COMMAND_TIMEOUT = 30.0
# The unit's command: a shell running as the unit's user opens the log, so that no root process ever opens a
# file in the user's directory. `$0` is the log, `$@` the server's command line.
LOG_WRAPPER = ("/bin/sh", "-c", 'exec "$@" >>"$0" 2>&1')


@dataclass(frozen=True)
class Unit:
    """A server's transient unit: who it runs as, its command, environment (token included) and log."""

    who: str  # the account's name, or our uid: part of the unit's name and of its environment file's
    user: Account | None  # User= when root starts it for an account
    port: int
    argv: tuple[str, ...]
    env: Mapping[str, str]
    log: Path
    home: Path
    env_file: Path

    @property
    def name(self) -> str:
        return unit_name(self.who, self.port)


def unit_name(who: str, port: int) -> str:
    return f"jupyter-notebook-{_safe(who)}-{port}.service"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def manager() -> list[str]:
    """Which systemd: as root the system's; otherwise the user's own (`--user`), where an unprivileged unit goes."""
    return [] if os.geteuid() == 0 else ["--user"]


def systemctl(*args: str, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemctl", *manager(), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def env_file_for(who: str, out: Path) -> Path:
    """Where the unit's environment file goes: as root, root's own directory; otherwise the user's output directory."""
    return system_env_file(who) if os.geteuid() == 0 else out / ENV_FILE


def system_env_file(who: str) -> Path:
    """<who>.env in the directory only root can use."""
    return system_dir() / f"{who}.env"


@overload
def system_dir(create: Literal[True] = True) -> Path: ...
@overload
def system_dir(create: bool) -> Path | None: ...
def system_dir(create: bool = True) -> Path | None:
    """Root's own directory for what outlives a run (environment files, provisioner.boot's plans), made so if it is
    not yet (or None, when not `create`); OSError when it is not one only root can use."""
    directory = Path(os.environ.get(SYSTEM_DIR_ENV) or SYSTEM_DIR)
    if not create and not os.path.lexists(directory):
        return None
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or stat.S_IMODE(info.st_mode) & 0o077:
        raise OSError(f"{directory} must be a directory only root can use (0700, root's)")
    return directory


def _quote(value: str) -> str:
    """A value as systemd's environment files read it back: in double quotes, with \\ " ` $ escaped."""
    return '"' + re.sub(r'([\\"`$])', r"\\\1", value) + '"'


def write_env_file(unit: Unit) -> None:
    """The server's environment, token included, in a file only its owner can read (0400)."""
    lines = []
    for key, value in sorted(unit.env.items()):
        if "\n" in value or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            continue  # systemd could not read it back; such a variable (a shell function's export) is not the server's
        lines.append(f"{key}={_quote(value)}\n")
    unit.env_file.unlink(missing_ok=True)  # a 0400 file cannot be rewritten in place
    fd = os.open(unit.env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o400)
    try:
        os.write(fd, "".join(lines).encode())
    finally:
        os.close(fd)


def _escaped(argument: str) -> str:
    """An argument written so that systemd passes it on as it is: it expands $NAME in ExecStart, and reads $$ as $."""
    return argument.replace("$", "$$")


def exec_start(unit: Unit) -> list[str]:
    return [_escaped(part) for part in (*LOG_WRAPPER, str(unit.log), *unit.argv)]


def properties(unit: Unit) -> list[tuple[str, str]]:
    """The unit's settings, for systemd-run's --property and for unit_file() alike."""
    props = [
        ("Description", "Jupyter Notebook server (jupyter-init)"),
        ("WorkingDirectory", str(unit.home)),
        ("NoNewPrivileges", "yes"),
        ("EnvironmentFile", str(unit.env_file)),
        ("KillMode", "control-group"),  # stopping the unit stops the kernels too
    ]
    if unit.user is not None:
        props += [("User", str(unit.user.uid)), ("Group", str(unit.user.gid))]
    return props


def run_command(unit: Unit) -> list[str]:
    """The systemd-run command line for the server: everything but the token, which is in the environment file."""
    command = ["systemd-run", *manager(), "--quiet", "--collect", f"--unit={unit.name}"]
    command += [f"--property={key}={value}" for key, value in properties(unit)]
    return [*command, "--", *exec_start(unit)]


def unit_file(unit: Unit) -> str:
    """The transient unit as a unit file, so that `systemd-analyze verify` can check what systemd-run asks for."""
    lines = [f"{key}={value}" for key, value in properties(unit)]
    return "[Service]\n" + "\n".join([*lines, "ExecStart=" + shlex.join(exec_start(unit))]) + "\n"


def start(unit: Unit) -> int:
    """Start the unit; its main PID. OSError (with systemd's words) when it cannot."""
    write_env_file(unit)
    try:
        started = subprocess.run(
            run_command(unit), capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
        )
        if started.returncode != 0:
            detail = started.stderr.strip() or f"exit code {started.returncode}"
            raise OSError(f"systemd-run failed: {detail}")
        shown = systemctl("show", "--property=MainPID", "--value", unit.name)
    except subprocess.TimeoutExpired as exc:
        raise OSError(f"systemd did not answer: {exc}") from None
    pid = int(shown.stdout.strip()) if shown.stdout.strip().isdigit() else 0
    if pid == 0:
        raise OSError(f"{unit.name} has no running process")
    return pid


def launch(
    port: int, argv: Sequence[str], *, env: Mapping[str, str], log: Path, home: Path, out: Path, user: Account | None
) -> tuple[str, int]:
    """Start the server as a transient unit (through the monitor when root acts for us): the unit's name and its main
    PID. OSError when it cannot."""
    if privsep.monitored():
        answer = privsep.ask("launch", port=port, argv=list(argv), env=dict(env), log=str(log))
        return str(answer["unit"]), int(answer["pid"])
    who = user.name if user else str(os.geteuid())
    unit = Unit(who, None, port, tuple(argv), env, log, home, env_file_for(who, out))
    return unit.name, start(unit)


def stop_unit(name: str, timeout: float) -> None:
    """Stop a unit of ours (through the monitor when root acts for us)."""
    if privsep.monitored():
        privsep.ask("stop", unit=name, timeout=timeout)
    else:
        systemctl("stop", name, timeout=timeout)


def services(launch: bool) -> dict[str, privsep.Service]:
    """What root's monitor does for the account's worker: stop the account's own unit, always; start one, only when
    root's command line asked for the systemd launcher (a record the account can edit never decides it)."""
    return {"stop": _stop_for, "launch": _launch_for if launch else privsep.refusal("launch", "--launcher systemd")}


def _launch_for(account: Account, request: dict[str, Any]) -> dict[str, Any]:
    """As root, for the worker: its server as a unit that runs as the account. The request is data: checked."""
    port, argv, env, log = request["port"], request["argv"], request["env"], request["log"]
    if not (type(port) is int and 0 < port < 65536):  # exact: true is not a port
        raise ValueError("not a port")
    if not (isinstance(argv, list) and argv and all(isinstance(part, str) and "\0" not in part for part in argv)):
        raise ValueError("not a command line")
    if not (isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())):
        raise ValueError("not an environment")
    if not (isinstance(log, str) and log.startswith("/") and "\0" not in log):
        raise ValueError("not a log path")
    env_file = system_env_file(account.name)
    unit = Unit(account.name, account, port, tuple(argv), env, Path(log), account.home, env_file)
    return {"pid": start(unit), "unit": unit.name}


def _stop_for(account: Account, request: dict[str, Any]) -> dict[str, Any]:
    """As root, for the worker: stop a unit only if it is one of the account's, by its name and by systemd's word."""
    name, timeout = request["unit"], request["timeout"]
    pattern = rf"jupyter-notebook-{re.escape(_safe(account.name))}-[0-9]+\.service"
    if not (isinstance(name, str) and re.fullmatch(pattern, name)):
        raise ValueError(f"{name!r} is not a unit of {account.name}'s")
    user = systemctl("show", "--property=User", "--value", name).stdout.strip()
    if user not in (str(account.uid), account.name):
        raise ValueError(f"{name} does not run as {account.name}")
    systemctl("stop", name, timeout=float(timeout))
    return {}
