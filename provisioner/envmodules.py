"""Lmod and Environment Modules, driven without a shell.

`module` is a shell function that evals what the module command prints for the shell. We ask the module command
for Python instead (`$LMOD_CMD python load X`, `modulecmd.tcl python load X`) and apply the assignments it prints to
an environment dict. The output is parsed, not executed: only `os.environ[...] = '...'`, `del os.environ[...]` and
`_mlstatus = True|False` are understood. `_mlstatus` decides success, because Environment Modules exits 0 on a
failed load.

cloud-init and `su -c` shells have no MODULEPATH; we fill it from the system's modulespath file, as the login
profile script would.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from provisioner.errors import shown_path

LMOD_HOMES = (Path("/usr/share/lmod/lmod"), Path("/opt/apps/lmod/lmod"), Path("/usr/local/lmod/lmod"))
LMOD_MODULESPATH = (Path("/etc/lmod/modulespath"),)
TCL_COMMANDS = (
    Path("/usr/lib/x86_64-linux-gnu/modulecmd.tcl"),
    Path("/usr/lib/aarch64-linux-gnu/modulecmd.tcl"),
    Path("/usr/share/modules/libexec/modulecmd.tcl"),
    Path("/usr/lib/modules/libexec/modulecmd.tcl"),
)
TCL_MODULESPATH = (Path("/etc/environment-modules/modulespath"), Path("/usr/share/modules/init/.modulespath"))
COMMAND_TIMEOUT = 120.0  # a module on CernVM-FS may be fetched on first use


class ModuleError(Exception):
    """A module command failed; the message is what the module system said."""


@dataclass(frozen=True)
class ModuleSystem:
    """A module system found on this machine: how to call it for Python output, where its default paths are."""

    kind: str  # "lmod" or "environment-modules"
    command: tuple[str, ...]
    modulespath_files: tuple[Path, ...]

    def describe(self) -> str:
        return f"{self.kind} ({self.command[-1]})"


def find(environ: Mapping[str, str]) -> ModuleSystem | None:
    """Find the module system: the one the environment names first (Lmod's LMOD_CMD, Environment Modules'
    MODULES_CMD, either's MODULESHOME), then the standard install paths."""
    lmod_cmd = environ.get("LMOD_CMD")
    if lmod_cmd and Path(lmod_cmd).is_file():
        return _lmod(Path(lmod_cmd))
    modules_cmd = environ.get("MODULES_CMD")
    if modules_cmd and Path(modules_cmd).is_file():
        return _tcl(Path(modules_cmd))
    home = environ.get("MODULESHOME")
    if home:
        found = _in_home(Path(home))
        if found:
            return found
    for lmod_home in LMOD_HOMES:
        if (lmod_home / "libexec" / "lmod").is_file():
            return _lmod(lmod_home / "libexec" / "lmod")
    for tcl in TCL_COMMANDS:
        if tcl.is_file():
            return _tcl(tcl)
    return None


def _in_home(home: Path) -> ModuleSystem | None:
    if (home / "libexec" / "lmod").is_file():
        return _lmod(home / "libexec" / "lmod")
    for candidate in (home / "libexec" / "modulecmd.tcl", home / "modulecmd.tcl"):
        if candidate.is_file():
            return _tcl(candidate)
    return None


def _lmod(command: Path) -> ModuleSystem:
    return ModuleSystem("lmod", (str(command),), LMOD_MODULESPATH)


def _tcl(command: Path) -> ModuleSystem:
    # An installation under a prefix (/opt/x/usr/lib/...) keeps its configuration under the same prefix.
    text = str(command)
    prefix = Path(text[: text.index("/usr/")]) if "/usr/" in text else None
    own = (prefix / "etc/environment-modules/modulespath",) if prefix and prefix != Path("/") else ()
    return ModuleSystem("environment-modules", ("tclsh", text), own + TCL_MODULESPATH)


def default_modulepath(system: ModuleSystem) -> str:
    """MODULEPATH as the system's login profile builds it: existing directories named in its modulespath file."""
    directories: list[str] = []
    for path_file in system.modulespath_files:
        try:
            lines = path_file.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            for entry in line.split("#", 1)[0].replace(":", " ").split():
                if Path(entry).is_dir() and entry not in directories:
                    directories.append(entry)
        break
    return ":".join(directories)


def run(system: ModuleSystem, args: Sequence[str], environ: Mapping[str, str]) -> dict[str, str]:
    """Run one module sub-command and return the environment it leaves; raise ModuleError when it fails."""
    try:
        completed = subprocess.run(
            [*system.command, "python", *args],
            # The width Lmod wraps its messages at: 80, what it finds anyway with no terminal (ours are pipes), but
            # found without a shell and `stty size` (about 3 ms of a 25 ms load). For this command only.
            env={"LMOD_TERM_WIDTH": "80", **environ},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            # Bytes that are not UTF-8 (in a module file) must reach apply(), which refuses them, not the decoder.
            encoding="utf-8",
            errors="surrogateescape",
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModuleError(f"cannot run {system.describe()}: {exc}") from None
    result = dict(environ)
    try:
        status = apply(completed.stdout, result)
    except (ValueError, SyntaxError, RecursionError, MemoryError) as exc:  # UnicodeError is a ValueError
        # What it prints comes from module files the account may write (~/.modulerc.lua): data, never a traceback.
        raise ModuleError(f"{system.describe()} printed output we cannot read ({type(exc).__name__})") from None
    if not status or completed.returncode != 0:
        raise ModuleError(_message(completed.stderr) or f"module {' '.join(args)} failed")
    return result


def apply(output: str, environ: dict[str, str]) -> bool:
    """Apply a module command's Python output to `environ`; return its _mlstatus (True when it prints none)."""
    status = True
    for statement in ast.parse(output).body:
        if isinstance(statement, (ast.Import, ast.ImportFrom, ast.Pass)):
            continue
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target, value = statement.targets[0], statement.value
            if isinstance(target, ast.Name) and target.id == "_mlstatus" and isinstance(value, ast.Constant):
                status = bool(value.value)
                continue
            key = _environ_key(target)
            if key is not None and isinstance(value, ast.Constant) and isinstance(value.value, str):
                environ[key] = value.value
                continue
        if isinstance(statement, ast.Delete) and len(statement.targets) == 1:
            key = _environ_key(statement.targets[0])
            if key is not None:
                environ.pop(key, None)
                continue
        # Anything else (chdir, aliases as functions) has no effect on the environment a server inherits.
    return status


def _environ_key(node: ast.expr) -> str | None:
    if (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "environ"
        and isinstance(node.slice, ast.Constant)
        and isinstance(node.slice.value, str)
    ):
        return node.slice.value
    return None


def _message(stderr: str) -> str:
    """The module system's error in one line, without its boilerplate advice."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for index, line in enumerate(lines):
        lowered = line.lower()
        if "error" in lowered:
            detail = line.split(":", 1)[1].strip() if ":" in line else line
            following = " ".join(lines[index + 1 : index + 2])
            return f"{detail} {following}".strip() if detail.endswith(":") or not detail else detail
    return lines[0] if lines else ""


def source_init_script(script: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """Source a shell init script (an EESSI init/bash, a site profile) and return the environment it leaves."""
    if not script.is_file():
        raise ModuleError(f"init script {shown_path(script)} does not exist")
    try:
        completed = subprocess.run(
            [
                "bash",
                "-c",
                'source "$1" >/dev/null 2>&1 </dev/null; status=$?; env -0; exit $status',
                "bash",
                str(script),
            ],
            env=dict(environ),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModuleError(f"cannot source {script}: {exc}") from None
    if completed.returncode != 0:
        raise ModuleError(f"sourcing {script} failed with exit code {completed.returncode}")
    result: dict[str, str] = {}
    for entry in completed.stdout.split(b"\0"):
        key, sep, value = entry.decode("utf-8", "surrogateescape").partition("=")
        if sep and key and not key.startswith("BASH_FUNC_"):
            result[key] = value
    # Variables bash sets for itself are not the script's doing.
    for own in ("SHLVL", "_", "OLDPWD", "PWD"):
        if own in environ:
            result[own] = environ[own]
        else:
            result.pop(own, None)
    return result


def with_modulepath(system: ModuleSystem, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment with MODULEPATH filled from the system's defaults when it has none."""
    result = dict(environ)
    if not result.get("MODULEPATH"):
        result["MODULEPATH"] = default_modulepath(system)
    return result


def purge_and_load(system: ModuleSystem, name: str, environ: Mapping[str, str]) -> dict[str, str]:
    """`module purge; module load NAME`, returning the resulting environment."""
    prepared = with_modulepath(system, environ)
    if not prepared["MODULEPATH"]:
        raise ModuleError(f"no MODULEPATH and no module directories in {', '.join(map(str, system.modulespath_files))}")
    # Purging nothing is a no-op, and a cloud-init or `su -c` shell has nothing loaded: save a module command.
    purged = run(system, ["purge"], prepared) if prepared.get("LOADEDMODULES") else prepared
    return run(system, ["load", name], purged)


def which(program: str, environ: Mapping[str, str]) -> Path | None:
    """The executable `program` on the PATH of `environ` (not our own PATH)."""
    found = shutil.which(program, path=environ.get("PATH", ""))
    return Path(found) if found else None
