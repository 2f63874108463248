"""What several verbs share: the definition, the output directory and its lock, and acting as its owner."""

from __future__ import annotations

import argparse
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from provisioner import actions, ownership, privsep, systemd
from provisioner import definition as definitions
from provisioner.definition import Definition
from provisioner.errors import ProvisionError, UsageError
from provisioner.secret import Secret
from provisioner.settings import DEFINITION_SETTINGS, Settings, resolve
from provisioner.store import Store

# Seconds a verb's worker may take as root's delegate before the monitor kills it (privsep.act_for).
OUTPUT_DIR = ("output_dir", "user")  # the settings that say where the output directory is
READ_DEADLINE = 60.0  # state, graph: read a record
RESUME_DEADLINE = 900.0  # a resume's module load (up to 3 module commands), server start and callbacks


def load_definition(path: Path | None) -> Definition:
    """The definition at `path`, or the one shipped with the package; validated whole."""
    if path is not None:
        ownership.check_root_input(path, "--states")  # as root, its settings decide what runs as whom
    return definitions.load(path or definitions.default_path(), actions.reasons(), DEFINITION_SETTINGS)


def output_dir(option: str | None, states: Path | None) -> Path:
    """The output directory as `run` would choose it: --output-dir, $PROVISIONER_OUTPUT_DIR, states.toml, ~/.jupyter."""
    # Only what decides where it is: a PROVISIONER_PORT meant for a run is not this verb's to judge.
    return resolve({"output_dir": option}, os.environ, load_definition(states).settings, None, OUTPUT_DIR).out


def act_as_owner(out: Path, deadline: float = READ_DEADLINE, launch: bool = False) -> None:
    """As root on an output directory another account owns: go on as that account (privsep), before reading it."""
    privsep.act_for(ownership.owner_of(out), deadline=deadline, services=systemd.services(launch))


def locked_store(out: Path) -> Store | None:
    """The store of an existing output directory, locked, or None when there is no directory: for the verbs that
    never create one."""
    if not is_directory(out):
        return None
    store = Store(out)
    try:
        store.lock(create=False)
    except OSError as exc:
        raise UsageError(f"cannot use {out}: {exc.strerror or exc}") from None
    return store


def settings_of(recorded: Mapping[str, Any], home: str, token: Secret | None) -> Settings:
    """Settings as a run recorded them (`Settings.public()`, its URLs whole), resolved again: nothing of this
    process's environment or a definition's [settings] layered in."""
    cli = {key: value for key, value in recorded.items() if value is not None and key != "home"}
    try:
        return resolve(cli, {"HOME": home}, {}, token)
    except ProvisionError as exc:
        raise UsageError(f"the recorded settings cannot be used: {exc.message}") from None
    except (OSError, ValueError) as exc:  # what the record holds is data: a path we may not look at, a NUL...
        raise UsageError(f"the recorded settings cannot be used: {exc}") from None


def is_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except (OSError, ValueError):
        return False


def is_directory(out: Path) -> bool:
    """Whether `out` is a directory; UsageError when we may not even look (a home made 0000, say)."""
    try:
        return stat.S_ISDIR(out.stat().st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        raise UsageError(f"cannot use {out}: {exc.strerror or exc}") from None


def add_output_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", metavar="DIR", help="the run's directory (default ~/.jupyter)")
