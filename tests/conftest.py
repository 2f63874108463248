"""Real parts for the tests: an HTTP server that receives callbacks, Lmod module trees, the CLI in a subprocess."""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import pytest

if TYPE_CHECKING:
    from provisioner.definition import Definition

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

REAL_JUPYTER = Path(sys.executable).with_name("jupyter-notebook")
CHECKOUT = Path(__file__).resolve().parent.parent
LMOD_CMD = Path("/usr/share/lmod/lmod/libexec/lmod")
PREREQUISITES = "scripts/install-test-prerequisites.sh"  # run as root: what the tests need from Debian
# Debian's environment-modules conflicts with lmod, so its package is unpacked here rather than installed
# (PREREQUISITES does it). Its modulecmd.tcl runs with the system's tclsh like an installed one.
ENVIRONMENT_MODULES = Path("/opt/environment-modules")
TOKEN = "tok-" + "5e3c7a1f9b" * 4  # distinctive, so a leak anywhere is easy to find
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Where a root run with the systemd launcher writes its boot unit (provisioner.boot): never this machine's own
# /etc/systemd/system, whatever a test forgets to say. A test that looks at the unit gives its own.
UNIT_SANDBOX = Path(tempfile.mkdtemp(prefix="jupyter-init-units-"))


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode()))


@dataclass
class CallbackServer:
    """A real HTTP server on loopback that records every callback and answers as the test tells it to."""

    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    # path -> statuses to answer in turn (the last one repeats); "hang" answers nothing for a long time.
    script: dict[str, list[int | str]] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)  # path -> headers sent with every answer
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    def forms(self, path: str | None = None) -> list[dict[str, str]]:
        with self.lock:
            return [r.form for r in self.received if path is None or r.path == path]

    def wait_for(self, count: int, path: str | None = None, timeout: float = 10.0) -> list[dict[str, str]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.forms(path)) < count:
            time.sleep(0.02)
        return self.forms(path)

    def next_answer(self, path: str) -> int | str:
        with self.lock:
            answers = self.script.get(path, [200])
            return answers.pop(0) if len(answers) > 1 else answers[0]


def _handler(owner: list[CallbackServer]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            cb = owner[0]
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with cb.lock:
                cb.received.append(Received(self.path, dict(self.headers.items()), body, time.monotonic()))
            answer = cb.next_answer(self.path)
            if answer == "hang":
                time.sleep(30)
                return
            assert isinstance(answer, int)
            self.send_response(answer)
            for name, value in cb.headers.get(self.path, {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def statuses(callbacks: CallbackServer, path: str) -> list[str]:
    """The callbacks `path` received, as status or status/reason."""
    return [form["status"] + (f"/{form['reason']}" if "reason" in form else "") for form in callbacks.forms(path)]


def urls(callbacks: CallbackServer) -> list[str]:
    """The START and COMPLETE options pointing at `callbacks`."""
    return ["--start-url", callbacks.url("/start"), "--complete-url", callbacks.url("/complete")]


@contextlib.contextmanager
def serving(port: int = 0) -> Iterator[CallbackServer]:
    owner: list[CallbackServer] = []
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(owner))
    server.daemon_threads = True
    owner.append(CallbackServer(server))
    # shutdown() waits for serve_forever's next poll: at the default 0.5 s, every test using a receiver paid it.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield owner[0]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def callbacks() -> Iterator[CallbackServer]:
    with serving() as server:
        yield server


def toml_string(text: str) -> str:
    """A TOML basic string: every control character escaped, the rest as it is."""
    escaped = "".join(
        f"\\u{ord(ch):04x}" if ord(ch) < 0x20 or ord(ch) == 0x7F else "\\" + ch if ch in '"\\' else ch for ch in text
    )
    return f'"{escaped}"'


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # Python's repr is TOML's, inf and nan too
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_string(key)} = {toml_value(item)}" for key, item in value.items()) + " }"
    raise TypeError(value)


def to_toml(data: Mapping[str, Any]) -> str:
    """Any data TOML can hold, as a states.toml is laid out: top-level keys, tables, and arrays of tables."""

    def table_array(value: object) -> bool:
        return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)

    def pairs(table: Mapping[str, Any]) -> list[str]:
        return [f"{toml_string(key)} = {toml_value(value)}" for key, value in table.items()]

    lines = pairs({key: value for key, value in data.items() if not isinstance(value, dict) and not table_array(value)})
    for key, value in data.items():
        if isinstance(value, dict):
            lines += ["", f"[{toml_string(key)}]", *pairs(value)]
    for key, value in data.items():
        if table_array(value):
            for item in value:
                lines += ["", f"[[{toml_string(key)}]]", *pairs(item)]
    return "\n".join(lines) + "\n"


def shipped_definition() -> dict[str, Any]:
    """The shipped states.toml as data, for tests that change it."""
    data: dict[str, Any] = tomllib.loads((Path(__file__).resolve().parent.parent / "states.toml").read_text())
    return data


def shipped() -> Definition:
    """The shipped definition, as the code loads it."""
    from provisioner import actions
    from provisioner import definition as definitions
    from provisioner.settings import DEFINITION_SETTINGS

    return definitions.load(definitions.default_path(), actions.reasons(), DEFINITION_SETTINGS)


def shipped_reasons() -> dict[str, int]:
    """The shipped definition's failure reasons and their exit codes, as the code loads them."""
    return dict(shipped().reasons)


def help_text(*words: str) -> str:
    """`jupyter-init WORDS --help` as printed (argparse wraps lines wherever the terminal is narrow)."""
    return subprocess.run(
        [sys.executable, "-m", "provisioner", *words, "--help"], capture_output=True, text=True, check=True
    ).stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def has_ipv6_loopback() -> bool:
    """Whether this machine can bind ::1 (a container may have IPv6 turned off)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def write_module(root: Path, name: str, body: str) -> None:
    (root / f"{name}.lua").write_text(body)


def make_bin(directory: Path, programs: Mapping[str, str | Path]) -> Path:
    """A directory of executables: a Path is linked to, a str is a script's text."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, what in programs.items():
        target = directory / name
        if isinstance(what, Path):
            target.symlink_to(what)
        else:
            target.write_text(what)
            target.chmod(0o755)
    return directory


@pytest.fixture(scope="session")
def module_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Lmod module files: JupyterNotebook puts the real Jupyter on PATH; the others fail in their own ways."""
    if not LMOD_CMD.exists():
        pytest.fail(f"Lmod is not installed; {PREREQUISITES} installs it")
    root = tmp_path_factory.mktemp("modules")
    jupyter_bin = make_bin(root.parent / "jupyter-bin", {"jupyter-notebook": REAL_JUPYTER})
    write_module(
        root, "JupyterNotebook", f'prepend_path("PATH", "{jupyter_bin}")\nsetenv("JUPYTER_MODULE_LOADED", "yes")\n'
    )
    write_module(root, "NoJupyter", 'setenv("NO_JUPYTER_HERE", "1")\n')
    write_module(root, "Broken", 'LmodError("this module is broken on purpose")\n')
    return root


MODULE_SECONDS = "SLOW_MODULE_SECONDS"  # how long the Slow modules take to load, from the run's environment


@pytest.fixture(scope="session")
def slow_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Lmod modules that take a while, as a module on a cold network file system does (EESSI over CernVM-FS)."""
    root = tmp_path_factory.mktemp("slow-modules")
    jupyter_bin = make_bin(root.parent / "slow-jupyter-bin", {"jupyter-notebook": REAL_JUPYTER})
    wait = f'os.execute("sleep " .. (os.getenv("{MODULE_SECONDS}") or "3"))\n'
    write_module(root, "Slow", f'{wait}prepend_path("PATH", "{jupyter_bin}")\n')
    write_module(root, "SlowBroken", f'{wait}LmodError("this module is broken on purpose")\n')
    return root


@pytest.fixture(autouse=True)
def _fresh_logger() -> Iterator[None]:
    """cli.main() points the provisioner's logger at stderr; undo that, so that caplog sees the next test's lines."""
    logger = logging.getLogger("provisioner")
    yield
    logger.handlers.clear()
    logger.propagate = True
    logger.setLevel(logging.NOTSET)


@pytest.fixture(scope="session")
def modulecmd_tcl() -> Path:
    found = sorted(ENVIRONMENT_MODULES.glob("usr/lib/*/modulecmd.tcl"))
    if not found:
        pytest.fail(f"Environment Modules is not unpacked in {ENVIRONMENT_MODULES}; {PREREQUISITES} does it")
    return found[0]


@pytest.fixture(scope="session")
def tcl_module_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same three modules as module_tree, as Tcl modulefiles for Environment Modules."""
    root = tmp_path_factory.mktemp("tcl-modules")
    jupyter_bin = make_bin(root.parent / "tcl-jupyter-bin", {"jupyter-notebook": REAL_JUPYTER})
    header = "#%Module1.0\n"
    (root / "JupyterNotebook").write_text(
        f"{header}prepend-path PATH {jupyter_bin}\nsetenv JUPYTER_MODULE_LOADED yes\n"
    )
    (root / "NoJupyter").write_text(f"{header}setenv NO_JUPYTER_HERE 1\n")
    (root / "Broken").write_text(f'{header}error "this module is broken on purpose"\n')
    return root


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


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


@pytest.fixture
def reap(home: Path) -> Iterator[Path]:
    """The test's HOME; every process started with it is killed at teardown."""
    yield home
    stop_servers(home)


def cmdlines() -> list[str]:
    """Every process's command line, as ps shows it."""
    lines = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                lines.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
    return lines


@pytest.fixture
def researcher() -> Iterator[pwd.struct_passwd]:
    """A real account with a home, able to run the Python that Jupyter is installed in."""
    with account() as made:
        yield made


@contextlib.contextmanager
def account() -> Iterator[pwd.struct_passwd]:
    """A real account with a home, removed afterwards with whatever it left running."""
    name = f"prov{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name], check=True)
    made = pwd.getpwnam(name)
    try:
        with traversable(Path(sys.executable), CHECKOUT):
            yield made
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], check=False)
        stop_servers(Path(made.pw_dir))
        # The killed server may linger a moment (PID 1 reaps it); userdel refuses while it does.
        for _ in range(50):
            if subprocess.run(["userdel", "--remove", name], check=False, capture_output=True).returncode in (0, 6):
                break
            time.sleep(0.1)


def as_user(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", name, "--", sys.executable, "-m", "provisioner", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
    )


@contextlib.contextmanager
def traversable(*paths: Path) -> Iterator[None]:
    """Let other accounts traverse to `paths`, and to whatever links among them lead to, for the block's length.

    The test Python and this checkout may live in a home other accounts cannot enter (a pyenv in root's 0700 home);
    another account must reach them, as it could a provisioner installed in /opt. The modes are restored afterwards.
    """
    opened = []
    for path in paths:
        for reached in reached_through(path):
            for directory in [*reversed(reached.parents), reached] if reached.is_dir() else reversed(reached.parents):
                mode = directory.stat().st_mode
                if not mode & stat.S_IXOTH:
                    directory.chmod(mode | stat.S_IXOTH)
                    opened.append((directory, mode))
    try:
        yield
    finally:
        for directory, mode in reversed(opened):
            directory.chmod(stat.S_IMODE(mode))


def reached_through(path: Path) -> list[Path]:
    """`path`, every link it leads through and what it ends at, each also named from its real directory.

    A venv's python is a link to the interpreter the venv was made from, which may live elsewhere (`os.path.realpath`
    shows where): the kernel walks the directories of every hop, and those a linked directory leads to.
    """
    hops = [path]
    while hops[-1].is_symlink() and len(hops) <= 40:  # the kernel gives up after 40 links too
        hops.append(hops[-1].parent / os.readlink(hops[-1]))  # a relative link is relative to its own directory
    return [*hops, *(hop.parent.resolve() / hop.name for hop in hops)]


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the wheel built from this checkout, readable by every account."""
    directory = tmp_path_factory.mktemp("wheels")
    build_wheel(directory)
    directory.chmod(0o755)
    return directory


def build_wheel(directory: Path) -> Path:
    """The wheel of this checkout, built now into `directory`."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(directory), str(CHECKOUT)], check=True
    )
    [wheel] = directory.glob("jupyter_init-*.whl")
    from provisioner import __version__

    assert wheel.name.startswith(f"jupyter_init-{__version__}-")
    return wheel


def pytest_report_header() -> str:
    from tests.pythons import interpreters

    return "pythons checked end to end: " + " ".join(interpreters())
