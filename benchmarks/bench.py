"""Time to a ready server: the bare Jupyter server, the provisioner, and the old script, side by side.

    python3 benchmarks/bench.py            # 5 interleaved runs of each, medians, ratios and the targets
    python3 benchmarks/bench.py --quick    # one run of each, no targets (CI runs this so that it cannot rot)
    python3 benchmarks/bench.py --against ../other-checkout   # the plain run of another checkout beside this one

Needs Lmod (Debian's `lmod`), curl and iproute2 (the old script uses them) and Jupyter in this Python.
Everything runs on loopback with a private HOME per run; every server started is stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import secrets
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path
from urllib.parse import parse_qsl

HERE = Path(__file__).resolve().parent
PYTHON_BIN = Path(sys.executable).parent
JUPYTER = PYTHON_BIN / "jupyter-notebook"
JUPYTER_INIT = PYTHON_BIN / "jupyter-init"
OLD_SCRIPT = HERE / "old_jupyter_init.sh"
# What a researcher feels: how much later the notebook is ready, and the platform told, than Jupyter started by hand.
TARGETS = {
    "jupyter-init / bare (medians)": 1.03,
    "jupyter-init / its own server's start": 1.03,
    "init_completed received after its server's first 200 (ms)": 15.0,
    "init_started behind a 2 s module load (s)": 0.1,
    "--help over python -c pass (ms)": 40.0,
    "peak RSS (MB)": 35.0,
    "crash detection (s)": 0.2,
}


class Receiver:
    """A callback endpoint on loopback that notes when each status arrived."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, dict[str, str]]] = []
        self.event = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.arrivals.append((time.time(), dict(parse_qsl(body.decode()))))
                receiver.event.set()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def wait_for(self, status: str, timeout: float = 60) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, form in self.arrivals:
                if form.get("status") == status:
                    return at
            self.event.wait(0.005)
            self.event.clear()
        raise TimeoutError(f"no {status} callback within {timeout}s")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def status(port: int, token: str) -> int | None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/api/status", headers={"Authorization": f"token {token}"})
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def kill_servers(home: Path) -> None:
    """Stop every process started with this HOME (the servers outlive the commands that started them)."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if f"HOME={home}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                    os.kill(int(proc.name), signal.SIGKILL)


@contextlib.contextmanager
def sandbox(modules: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A private HOME and a clean environment whose PATH has no Jupyter until the module is loaded."""
    with tempfile.TemporaryDirectory(prefix="bench-home-") as home_dir:
        home = Path(home_dir)
        env = {"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin", "MODULEPATH": str(modules), "LANG": "C.UTF-8"}
        try:
            yield home, env
        finally:
            kill_servers(home)


def bare(modules: Path) -> dict[str, float]:
    """jupyter-notebook started directly until its first 200 on /api/status: the floor."""
    token, port = secrets.token_hex(24), free_port()
    with sandbox(modules) as (home, env):
        # As the run binds it (the spec's 0.0.0.0), so that the two starts are the same server's.
        argv = [str(JUPYTER), "--no-browser", "--ip=0.0.0.0", f"--port={port}", "--ServerApp.port_retries=0"]
        if os.geteuid() == 0:
            argv.append("--allow-root")
        started = time.monotonic()
        server = subprocess.Popen(
            argv, env={**env, "JUPYTER_TOKEN": token}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=home
        )
        while status(port, token) != 200:
            time.sleep(0.01)
        ready = time.monotonic() - started
        server.kill()
        server.wait()
        return {"ready": ready}


class CpuSampler:
    """The CPU time (user + system) a process has used, sampled every 10 ms against the wall clock, so that its use in
    any window of the run (its server's start) can be read back."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, float]] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.done.is_set():
            try:
                fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                return
            if fields[0] == "Z":
                return
            self.samples.append((time.time(), (int(fields[11]) + int(fields[12])) / self.TICK))
            self.done.wait(0.01)

    def stop(self) -> None:
        self.done.set()
        self.thread.join()

    def used(self, start: float, end: float) -> float:
        """CPU seconds used between two wall-clock times (the samples nearest inside the window)."""
        inside = [cpu for at, cpu in self.samples if start <= at <= end]
        return inside[-1] - inside[0] if len(inside) > 1 else 0.0


def wall(stamp: str) -> float:
    """A record's timestamp (UTC, ISO 8601, milliseconds) as wall-clock seconds."""
    return datetime.fromisoformat(stamp).timestamp()


def provisioner(
    modules: Path, options: tuple[str, ...] = ("--port", "auto"), code: Path | None = None
) -> dict[str, float]:
    """`jupyter-init TOKEN START COMPLETE`, loading the module with real Lmod: to init_completed, to its exit, and
    its parts as its record and the receiver saw them: before its server was started (`starting` left), its server's
    start to first 200 (`verifying` left), from there to init_completed received, and its CPU meanwhile.

    `code`: another checkout's provisioner, run with this Python (its PYTHONPATH goes before our own install)."""
    token = secrets.token_hex(24)
    receiver = Receiver()
    with sandbox(modules) as (home, env):
        argv = [str(JUPYTER_INIT), token, receiver.url("/start"), receiver.url("/complete"), *options]
        if code is not None:
            env["PYTHONPATH"] = str(code)
        begun, started = time.time(), time.monotonic()
        process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        cpu = CpuSampler(process.pid)
        completed_at = receiver.wait_for("init_completed")
        _, exit_status, usage = os.wait4(process.pid, 0)
        exited = time.monotonic() - started
        cpu.stop()
        if os.waitstatus_to_exitcode(exit_status) != 0:
            raise RuntimeError(f"jupyter-init failed: {process.stderr.read() if process.stderr else ''}")
        receiver.close()
        history = json.loads((home / ".jupyter" / "provisioner-state.json").read_text())["history"]
        left = {entry["state"]: entry for entry in history}
        launched, answered = wall(left["starting"]["left"]), wall(left["verifying"]["left"])
        return {
            "completed": completed_at - begun,
            "exited": exited,
            "rss_mb": usage.ru_maxrss / 1024,
            "verifying": left["verifying"]["duration"],
            "before_server": launched - begun,
            "own_server": answered - launched,
            "after_200": completed_at - answered,
            "cpu_while_server_starts": cpu.used(launched, answered),
            "cpu": usage.ru_utime + usage.ru_stime,
        }


def old_script(modules: Path) -> dict[str, float]:
    """The old approach (benchmarks/old_jupyter_init.sh) in a login shell, until init_completed arrives."""
    token = secrets.token_hex(24)
    receiver = Receiver()
    with sandbox(modules) as (_, base):
        line = shlex.join([str(OLD_SCRIPT), token, receiver.url("/start"), receiver.url("/complete")])
        env = {**base, "PORT": str(free_port()), "PATH": f"{base['PATH']}:/usr/sbin:/sbin"}
        wall = time.time()
        process = subprocess.run(["bash", "-lc", line], env=env, capture_output=True, text=True, check=False)
        if process.returncode != 0:
            raise RuntimeError(f"old script failed: {process.stderr}")
        completed = receiver.wait_for("init_completed") - wall
        # Did the server answer when the old script said it was ready? (It waited a fixed 3 s, not for an answer.)
        answering = status(int(env["PORT"]), token) == 200
        receiver.close()
        return {"completed": completed, "answering": float(answering)}


def crash_detection(modules: Path) -> dict[str, float]:
    """From the moment a starting server dies to the moment the failed callback arrives."""
    receiver = Receiver()
    with sandbox(modules) as (_, base), tempfile.TemporaryDirectory(prefix="bench-fake-") as fake_dir:
        died_at = Path(fake_dir) / "died"
        fake = Path(fake_dir) / "jupyter-notebook"
        fake.write_text(f"#!/bin/sh\nsleep 1\ndate +%s.%N > {died_at}\nexit 1\n")
        fake.chmod(0o755)
        env = {**base, "PATH": f"{fake_dir}:{base['PATH']}", "JUPYTER_TOKEN": secrets.token_hex(24)}
        argv = [str(PYTHON_BIN / "jupyter-init"), "run", "--module", "", "--port", "auto"]
        subprocess.run([*argv, "--complete-url", receiver.url("/complete")], env=env, capture_output=True, check=False)
        arrived = receiver.wait_for("failed")
        receiver.close()
        return {"detect": arrived - float(died_at.read_text())}


def early_callbacks(modules: Path, code: Path | None = None) -> dict[str, float]:
    """Behind a module that takes 2 s to load (a cold stack on CernVM-FS), from the run's start: when init_started
    and status=loading arrive. The module then fails, so that no server starts. `code`: another checkout's."""
    receiver = Receiver()
    with sandbox(modules) as (_, base):
        env = {**base, "JUPYTER_TOKEN": secrets.token_hex(24)}
        if code is not None:
            env["PYTHONPATH"] = str(code)
        argv = [str(PYTHON_BIN / "jupyter-init"), "run", "--module", "SlowBroken", "--port", "auto"]
        argv += ["--start-url", receiver.url("/start"), "--progress-url", receiver.url("/progress")]
        wall = time.time()
        subprocess.run(argv, env=env, capture_output=True, check=False)
        started, loading = receiver.wait_for("init_started") - wall, receiver.wait_for("loading") - wall
        receiver.close()
        return {"started": started, "loading": loading}


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    started = time.monotonic()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.monotonic() - started


def help_time(modules: Path, code: Path | None = None) -> dict[str, float]:
    """`jupyter-init --help` (of another checkout: `code`), and Python's own start for scale."""
    env = {**os.environ, "PYTHONPATH": str(code)} if code is not None else None
    return {
        "help": timed([str(PYTHON_BIN / "jupyter-init"), "--help"], env),
        "python": timed([sys.executable, "-c", "pass"]),
    }


def module_time(modules: Path) -> dict[str, float]:
    """Loading JupyterNotebook: the provisioner's way (no shell) against a login shell's `module load`."""
    code = (
        "import os, time; from provisioner import envmodules; s = envmodules.find(os.environ); t = time.monotonic(); "
        "envmodules.purge_and_load(s, 'JupyterNotebook', dict(os.environ)); print(time.monotonic() - t)"
    )
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "MODULEPATH": str(modules), "HOME": str(modules)}
    ours = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    return {"provisioner": float(ours), "login_shell": timed(["bash", "-lc", "module load JupyterNotebook"], env)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one run of each, no targets")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--against", type=Path, metavar="CHECKOUT", help="also run another checkout's provisioner")
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs

    with tempfile.TemporaryDirectory(prefix="bench-") as root:
        # A bin directory with only Jupyter in it, for the module to put on PATH.
        bin_dir = Path(root) / "jupyter-bin"
        bin_dir.mkdir()
        (bin_dir / "jupyter-notebook").symlink_to(JUPYTER)
        modules = Path(root) / "modules"
        modules.mkdir()
        (modules / "JupyterNotebook.lua").write_text(f'prepend_path("PATH", "{bin_dir}")\n')
        (modules / "SlowBroken.lua").write_text('os.execute("sleep 2")\nLmodError("slow, then broken")\n')

        scenarios: dict[str, Callable[[Path], dict[str, float]]] = {
            "bare": bare,
            "provisioner": provisioner,
            # The options of issue 13, each alone: what they add when used (a run without them is "provisioner").
            "page": lambda modules: provisioner(modules, ("--port", str(free_port()), "--progress-page")),
            "tls": lambda modules: provisioner(modules, ("--port", "auto", "--tls", "self-signed")),
            "old": old_script,
            "crash": crash_detection,
            "early": early_callbacks,
            "help": help_time,
            "modules": module_time,
        }
        if args.against is not None:
            against = args.against.resolve()
            scenarios["against"] = lambda modules: provisioner(modules, code=against)
            scenarios["against help"] = lambda modules: help_time(modules, against)
            scenarios["against early"] = lambda modules: early_callbacks(modules, against)
        results: dict[str, list[dict[str, float]]] = {name: [] for name in scenarios}
        for run in range(runs):  # interleaved, so that a slow moment of the machine hits every scenario alike
            for name, scenario in scenarios.items():
                results[name].append(scenario(modules))
            print(f"run {run + 1}/{runs} done", file=sys.stderr)

    def median(name: str, key: str) -> float:
        return statistics.median(result[key] for result in results[name])

    def added(name: str) -> float:
        """What a provisioner adds to its own server's start: the same run on both sides, so Jupyter's noise
        cancels."""
        return statistics.median(result["completed"] - result["verifying"] for result in results[name])

    bare_ready = median("bare", "ready")
    per_round = zip(results["provisioner"], results["bare"])
    rows = [
        ("bare server: start to first 200 (s)", bare_ready),
        ("jupyter-init: start to init_completed received (s)", median("provisioner", "completed")),
        ("jupyter-init / bare (medians)", median("provisioner", "completed") / bare_ready),
        (
            "jupyter-init / bare, median of per-round ratios",
            statistics.median(p["completed"] / b["ready"] for p, b in per_round),
        ),
        ("  before its server is started (s)", median("provisioner", "before_server")),
        ("  its server: start to first 200 (s)", median("provisioner", "own_server")),
        ("init_completed received after its server's first 200 (ms)", median("provisioner", "after_200") * 1000),
        (
            "jupyter-init / its own server's start",
            statistics.median(r["completed"] / r["own_server"] for r in results["provisioner"]),
        ),
        ("  its CPU while its server starts (s)", median("provisioner", "cpu_while_server_starts")),
        ("  its CPU in all (s)", median("provisioner", "cpu")),
        ("jupyter-init: start to exit (s)", median("provisioner", "exited")),
        ("jupyter-init: added to its server's start (s)", added("provisioner")),
        ("  with --progress-page: added (s)", added("page")),
        ("  with --tls self-signed: added (s)", added("tls")),
        ("old script: start to init_completed (s)", median("old", "completed")),
        ("old script / bare", median("old", "completed") / bare_ready),
        ("old script: server answering at init_completed", statistics.mean(r["answering"] for r in results["old"])),
        ("crash detection (s)", median("crash", "detect")),
        ("init_started behind a 2 s module load (s)", median("early", "started")),
        ("status=loading behind a 2 s module load (s)", median("early", "loading")),
        ("peak RSS (MB)", median("provisioner", "rss_mb")),
        ("--help (ms)", median("help", "help") * 1000),
        ("python -c pass (ms)", median("help", "python") * 1000),
        ("--help over python -c pass (ms)", statistics.median(h["help"] - h["python"] for h in results["help"]) * 1000),
        ("module load, jupyter-init (ms)", median("modules", "provisioner") * 1000),
        ("module load, bash -lc (ms)", median("modules", "login_shell") * 1000),
    ]
    if args.against is not None:
        rows += [
            (f"{args.against}: start to init_completed received (s)", median("against", "completed")),
            (f"{args.against}: / bare (medians)", median("against", "completed") / bare_ready),
            (f"{args.against}: before its server is started (s)", median("against", "before_server")),
            (f"{args.against}: after its server's first 200 (ms)", median("against", "after_200") * 1000),
            (f"{args.against}: its CPU while its server starts (s)", median("against", "cpu_while_server_starts")),
            (f"{args.against}: added to its server's start (s)", added("against")),
            (f"{args.against}: init_started behind a 2 s module load (s)", median("against early", "started")),
            (f"{args.against}: peak RSS (MB)", median("against", "rss_mb")),
            (f"{args.against}: --help (ms)", median("against help", "help") * 1000),
        ]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}")
    versions = {name: metadata.version(name) for name in ("jupyter-init", "notebook", "jupyter_server")}
    print(
        f"python {platform.python_version()}, " + ", ".join(f"{name} {version}" for name, version in versions.items())
    )
    print(f"runs: {runs} of each, interleaved; medians")
    failed = 0
    for label, value in rows:
        target = TARGETS.get(label)
        verdict = ""
        if target is not None and not args.quick:
            met = value <= target
            failed += not met
            verdict = f"  target <= {target:g}: {'met' if met else 'MISSED'}"
        print(f"  {label:<62} {value:9.3f}{verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
