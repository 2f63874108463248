"""The CLI in a subprocess (or under strace), and what it leaves: the state file, its servers, ps."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.constants import PREREQUISITES, SYSTEM_PATH, UNIT_SANDBOX


def help_text(*words: str) -> str:
    """`jupyter-init WORDS --help` as printed (argparse wraps lines wherever the terminal is narrow)."""
    return subprocess.run(
        [sys.executable, "-m", "provisioner", *words, "--help"], capture_output=True, text=True, check=True
    ).stdout


def cli_env(home: Path, modules: Path | None = None, path: str = SYSTEM_PATH, **extra: str) -> dict[str, str]:
    """A clean environment like cloud-init's: no Jupyter on PATH, no module system set up unless asked."""
    env = {"HOME": str(home), "PATH": path, "LANG": "C.UTF-8", "PROVISIONER_UNIT_DIR": str(UNIT_SANDBOX)}
    if modules is not None:
        env["MODULEPATH"] = str(modules)
    env.update(extra)
    return env


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    home: Path

    @property
    def out(self) -> Path:
        return self.home / ".jupyter"

    def info(self) -> dict[str, object]:
        data: dict[str, object] = json.loads((self.out / "jupyter_info.json").read_text())
        return data


def start_cli(args: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[str]:
    """The CLI in the background, for tests that act while it runs."""
    return subprocess.Popen(
        [sys.executable, "-m", "provisioner", *args],
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_state(home: Path) -> dict[str, Any]:
    """The state file, or {} while there is none."""
    try:
        data: dict[str, Any] = json.loads((home / ".jupyter" / "provisioner-state.json").read_text())
    except (OSError, ValueError):
        return {}
    return data


def jupyter_pids(home: Path) -> list[int]:
    """The Jupyter servers running with this HOME."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                cmdline = (proc / "cmdline").read_bytes()
                environ = (proc / "environ").read_bytes().split(b"\0")
                serves = b"jupyter-notebook" in cmdline or b"jupyter-lab" in cmdline
                if serves and f"HOME={home}".encode() in environ:
                    pids.append(int(proc.name))
    return pids


def run_cli(args: Sequence[str], env: Mapping[str, str], timeout: float = 120) -> Run:
    completed = subprocess.run(
        [sys.executable, "-m", "provisioner", *args],
        env=dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(completed.returncode, completed.stdout, completed.stderr, Path(env["HOME"]))


@dataclass
class Traced:
    """A run of the CLI and what strace saw: each execve of any process of the run, its argv in full."""

    run: Run
    execs: list[str]


def traced_cli(args: Sequence[str], env: Mapping[str, str], trace: Path, timeout: float = 120) -> Traced:
    """The CLI under strace, which records every program that any process of the run executes, with its argv, and
    leaves the server running once the CLI has exited (a command line sampled now and then could miss one)."""
    if shutil.which("strace") is None:
        pytest.fail(f"strace is not installed; {PREREQUISITES} installs it")
    out, err = trace.with_name(f"{trace.name}.stdout"), trace.with_name(f"{trace.name}.stderr")
    # -s: whole strings, not the first 32 bytes. -I1: SIGTERM detaches from the server and ends strace, which would
    # otherwise follow the server for as long as it lives. No -v: the environment, where the token belongs, stays out.
    strace = ["strace", "-f", "-q", "-I1", "-e", "trace=execve", "-s", "65535", "-o", str(trace)]
    with out.open("w") as stdout, err.open("w") as stderr:
        tracer = subprocess.Popen(
            [*strace, sys.executable, "-m", "provisioner", *args],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    try:
        code = _traced_exit(trace, time.monotonic() + timeout)
    finally:
        tracer.terminate()
        tracer.wait(30)
    execs = [line for line in trace.read_text().splitlines() if " execve(" in line]
    return Traced(Run(code, out.read_text(), err.read_text(), Path(env["HOME"])), execs)


def server_execs(traced: Traced, port: int) -> list[str]:
    """The execve lines that started the Jupyter server on `port`: proof that the trace holds the server's argv."""
    server = re.compile(rf'execve\("[^"]*/jupyter-notebook", \[.*"--port={port}"')
    return [line for line in traced.execs if server.search(line)]


def _traced_exit(trace: Path, deadline: float) -> int:
    """The exit code of the first process strace traced, once strace has seen it exit."""
    while time.monotonic() < deadline:
        text = trace.read_text() if trace.exists() else ""
        if "\n" in text:
            pid = text.split(maxsplit=1)[0]  # each line starts with its process's PID; the first is the CLI's
            # strace pads a PID to five columns: "1967  +++ exited with 0 +++", "12345 +++ exited with 0 +++".
            ended = re.search(rf"^{pid} +\+\+\+ (?:exited with (\d+)|killed by SIG(\w+))", text, re.MULTILINE)
            if ended:
                return int(ended[1]) if ended[1] else -getattr(signal, f"SIG{ended[2]}")
        time.sleep(0.02)
    raise AssertionError(f"the CLI did not exit in time under strace; {trace} so far:\n{text[-2000:]}")


def stop_servers(home: Path) -> None:
    """Stop every server a test's provisioner left running (found through the processes' HOME)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            environ = (proc / "environ").read_bytes().split(b"\0")
            if f"HOME={home}".encode() in environ and int(proc.name) != os.getpid():
                with contextlib.suppress(OSError):
                    os.killpg(int(proc.name), signal.SIGKILL)
                with contextlib.suppress(OSError):
                    os.kill(int(proc.name), signal.SIGKILL)


def cmdlines() -> list[str]:
    """Every process's command line, as ps shows it."""
    lines = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                lines.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
    return lines


VERBS = ("run", "resume", "state", "stop", "graph", "check")


def help_of(verb: str) -> str:
    return " ".join(help_text(verb).split())  # argparse wraps lines wherever the terminal is narrow
