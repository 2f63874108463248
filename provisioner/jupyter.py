"""The Jupyter program a run starts: which one the front end needs, where it is, and the environment it starts in."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from provisioner import envmodules
from provisioner.output import log
from provisioner.secret import TOKEN_ENV
from provisioner.settings import Settings
from provisioner.values import APPS

BESIDE = Path(sys.executable).parent  # a venv's scripts directory, where the `notebook` extra puts Jupyter


def base_environment(settings: Settings) -> dict[str, str]:
    """Our environment without the token, as the VM's user's when we act for them."""
    env = {key: value for key, value in os.environ.items() if key != TOKEN_ENV}
    if settings.user is not None:
        env.update(settings.user.environment())
    return env


def program(settings: Settings) -> str:
    """The program a module must put on PATH for the chosen front end: jupyter-notebook or jupyter-lab."""
    return APPS[settings.app]


def find_jupyter(env: Mapping[str, str], module: str, name: str) -> Path | None:
    """jupyter-notebook on the PATH the module gave; with no module, on PATH and then beside our own interpreter.

    Installed with the `notebook` extra in a venv and run by its full path (as cloud-init's runcmd runs it, without
    activating the venv), the venv's own jupyter-notebook is beside the interpreter, not on PATH.
    """
    found = envmodules.which(name, env)
    if found is None and not module and os.access(BESIDE / name, os.X_OK):
        found = BESIDE / name
    if found is not None:
        log.info("using %s", found)
    return found
