"""The Jupyter program: the one the front end needs, found on the module's PATH or beside our interpreter, started in
our environment without the token."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from provisioner import jupyter
from provisioner.secret import TOKEN_ENV
from provisioner.settings import Settings
from provisioner.values import Account
from tests.helpers.modules import make_bin

SCRIPT = "#!/bin/sh\nexit 0\n"


def test_each_front_end_names_its_program() -> None:
    assert jupyter.program(Settings()) == "jupyter-notebook"
    assert jupyter.program(Settings(app="lab")) == "jupyter-lab"


def test_the_base_environment_holds_no_token_and_is_the_accounts_when_acting_for_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "a-token-of-many-characters")
    monkeypatch.setenv("HOME", "/root")
    assert TOKEN_ENV not in jupyter.base_environment(Settings())
    alice = Account("alice", 1000, 1000, Path("/home/alice"), "/bin/bash")
    env = jupyter.base_environment(Settings(user=alice))
    assert (env["HOME"], env["USER"], env["LOGNAME"], env["SHELL"]) == ("/home/alice", "alice", "alice", "/bin/bash")
    assert TOKEN_ENV not in env and os.environ[TOKEN_ENV], "ours is left as it was"


def test_jupyter_is_found_on_the_path_the_module_gave(tmp_path: Path) -> None:
    found = make_bin(tmp_path / "module-bin", {"jupyter-notebook": SCRIPT})
    assert (
        jupyter.find_jupyter({"PATH": str(found)}, "JupyterNotebook", "jupyter-notebook") == found / "jupyter-notebook"
    )


def test_with_no_module_jupyter_beside_our_interpreter_is_found_and_with_one_it_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    beside = make_bin(tmp_path / "venv-bin", {"jupyter-notebook": SCRIPT})
    monkeypatch.setattr(jupyter, "BESIDE", beside)
    empty = {"PATH": str(tmp_path / "nothing")}
    assert jupyter.find_jupyter(empty, "", "jupyter-notebook") == beside / "jupyter-notebook"
    # A module was asked for: its Jupyter or none, never another one that happens to be installed.
    assert jupyter.find_jupyter(empty, "JupyterNotebook", "jupyter-notebook") is None
    assert jupyter.find_jupyter(empty, "", "jupyter-lab") is None
