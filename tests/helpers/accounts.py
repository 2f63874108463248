"""Real second accounts, and what lets them reach this Python and this checkout."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.cli import jupyter_pids, stop_servers
from tests.helpers.constants import CHECKOUT


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


@dataclass
class Researcher:
    account: pwd.struct_passwd

    @property
    def home(self) -> Path:
        return Path(self.account.pw_dir)

    @property
    def out(self) -> Path:
        return self.home / ".jupyter"

    def own(self, *paths: Path) -> None:
        for path in paths:
            os.lchown(path, self.account.pw_uid, self.account.pw_gid)

    def make_out(self) -> Path:
        """~/.jupyter as the account would make it before a run."""
        self.out.mkdir(mode=0o700, exist_ok=True)
        self.own(self.out)
        return self.out

    def plant_link(self, name: str, target: Path) -> Path:
        link = self.make_out() / name
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        link.symlink_to(target)
        self.own(link)
        return link

    def edit_record(self, **changes: object) -> None:
        """Change the state file as the account can: it is theirs."""
        path = self.out / "provisioner-state.json"
        record = json.loads(path.read_text())
        for dotted, value in changes.items():
            holder = record
            *parents, key = dotted.split("__")
            for parent in parents:
                holder = holder.setdefault(parent, {})
            holder[key] = value
        path.write_text(json.dumps(record))
        self.own(path)


def servers_of(user: Researcher) -> list[int]:
    return jupyter_pids(user.home)
