"""The fixtures: real parts each test asks for by name (a callback receiver, Lmod module trees, a private HOME, an
account), and the markers they bring, so that `-m "not e2e"`, `-m "not account"`... select by what a test needs.
What the fixtures and tests call lives in tests/helpers/."""

from __future__ import annotations

import logging
import os
import pwd
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from provisioner import systemd
from provisioner.context import RunContext
from provisioner.secret import Secret
from provisioner.settings import Settings
from provisioner.values import locate_user
from tests.helpers.accounts import Researcher, account
from tests.helpers.browser import Tab, chromium
from tests.helpers.cli import stop_servers
from tests.helpers.constants import (
    CHECKOUT,
    ENVIRONMENT_MODULES,
    LMOD_CMD,
    MODULE_SECONDS,
    PREREQUISITES,
    REAL_JUPYTER,
    TOKEN,
)
from tests.helpers.modules import make_bin, write_module
from tests.helpers.pythons import build_wheel
from tests.helpers.receiver import CallbackServer, serving
from tests.helpers.systemd import ARGV

# What each fixture needs of the machine, as a marker on every test that uses it (directly or through another).
NEEDS = {
    "root": ("root",),
    "researcher": ("account", "root"),
    "other_account": ("account", "root"),
    "browser": ("browser",),
    "tmpfs": ("root",),
}
TIERS = {"e2e": CHECKOUT / "tests" / "e2e"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture in getattr(item, "fixturenames", ()):
            for marker in NEEDS.get(fixture, ()):
                item.add_marker(marker)
        for marker, directory in TIERS.items():
            if directory in Path(str(item.path)).parents:
                item.add_marker(marker)


@pytest.fixture
def root() -> None:
    """What root alone may do (chown, another account's identity): the suite runs as root, as CI does."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root; the suite runs as root (see docs/development.md)")


@pytest.fixture
def ctx(tmp_path: Path) -> RunContext:
    """A run context with a private HOME and the test token."""
    home = tmp_path / "home"
    home.mkdir()
    return RunContext(settings=Settings(token=Secret(TOKEN), home=home, ip="127.0.0.1"))


@pytest.fixture
def callbacks() -> Iterator[CallbackServer]:
    with serving() as server:
        yield server


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


@pytest.fixture
def reap(home: Path) -> Iterator[Path]:
    """The test's HOME; every process started with it is killed at teardown."""
    yield home
    stop_servers(home)


@pytest.fixture
def researcher() -> Iterator[pwd.struct_passwd]:
    """A real account with a home, able to run the Python that Jupyter is installed in."""
    with account() as made:
        yield made


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the wheel built from this checkout, readable by every account."""
    directory = tmp_path_factory.mktemp("wheels")
    build_wheel(directory)
    directory.chmod(0o755)
    return directory


def pytest_report_header() -> str:
    from tests.helpers.pythons import interpreters

    return "pythons checked end to end: " + " ".join(interpreters())


@pytest.fixture
def unit(tmp_path: Path, root: None) -> systemd.Unit:
    """A unit as root starts it for the account `nobody`, with its environment file in root's own directory."""
    nobody = locate_user("nobody")
    env = {"PATH": "/opt/jupyter/bin:/usr/bin", "ODD": 'a "$b" `c` \\d', "JUPYTER_TOKEN": TOKEN}
    log = tmp_path / "out" / "jupyter.log"
    return systemd.Unit("nobody", nobody, 8008, tuple(ARGV), env, log, tmp_path, tmp_path / "root-only" / "nobody.env")


@pytest.fixture
def user(researcher: pwd.struct_passwd) -> Researcher:
    return Researcher(researcher)


@pytest.fixture
def other_account() -> Iterator[pwd.struct_passwd]:
    """A second real account, not the researcher: another local user on the VM."""
    with account() as made:
        yield made


@pytest.fixture
def browser() -> type[Tab]:
    """Debian's headless chromium: each Tab(profile) a browser of its own."""
    chromium()  # fails the test at once, naming what installs it, when there is none
    return Tab


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """mount(OPTIONS): a small tmpfs mounted with those options on a directory of the test's; unmounted after."""
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        where = tmp_path / f"tmpfs{len(mounted)}"
        where.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=True)
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], check=False)
