from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import pytest

from provisioner import envmodules, jupyter
from provisioner.actions import loading
from provisioner.context import RunContext
from provisioner.errors import StepFailed
from tests.helpers.constants import REAL_JUPYTER, SYSTEM_PATH
from tests.helpers.modules import make_bin


def test_the_module_puts_jupyter_on_the_servers_path_not_ours(
    ctx: RunContext, module_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", SYSTEM_PATH)
    monkeypatch.setenv("MODULEPATH", str(module_tree))
    loading.run(ctx)
    assert ctx.jupyter is not None and ctx.jupyter.parent.name == "jupyter-bin"
    assert ctx.env["JUPYTER_MODULE_LOADED"] == "yes"
    assert "jupyter-bin" not in os.environ["PATH"]


def test_the_token_is_kept_out_of_the_module_commands_environment(
    ctx: RunContext, module_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODULEPATH", str(module_tree))
    monkeypatch.setenv("JUPYTER_TOKEN", "should-not-travel")
    loading.run(ctx)
    assert "JUPYTER_TOKEN" not in ctx.env


def test_no_module_and_no_jupyter_is_jupyter_not_found(
    ctx: RunContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(jupyter, "BESIDE", tmp_path)  # an interpreter with no Jupyter installed beside it
    ctx.settings = dataclasses.replace(ctx.settings, module="")
    with pytest.raises(StepFailed) as caught:
        loading.run(ctx)
    assert caught.value.reason == "jupyter_not_found"


def test_with_no_module_the_jupyter_beside_our_interpreter_is_found_and_named(
    ctx: RunContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A venv with the `notebook` extra, run by its full path without being activated: Jupyter is not on PATH."""
    caplog.set_level(logging.INFO, logger="provisioner")
    venv_bin = make_bin(tmp_path / "venv" / "bin", {"jupyter-notebook": "#!/bin/sh\n"})
    monkeypatch.setenv("PATH", SYSTEM_PATH)
    monkeypatch.setattr(jupyter, "BESIDE", venv_bin)
    ctx.settings = dataclasses.replace(ctx.settings, module="")
    loading.run(ctx)
    assert ctx.jupyter == venv_bin / "jupyter-notebook"
    assert f"using {venv_bin / 'jupyter-notebook'}" in caplog.text


def test_jupyter_on_path_comes_before_the_one_beside_our_interpreter(
    ctx: RunContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv_bin = make_bin(tmp_path / "venv" / "bin", {"jupyter-notebook": "#!/bin/sh\n"})
    monkeypatch.setenv("PATH", f"{REAL_JUPYTER.parent}:{SYSTEM_PATH}")
    monkeypatch.setattr(jupyter, "BESIDE", venv_bin)
    ctx.settings = dataclasses.replace(ctx.settings, module="")
    loading.run(ctx)
    assert ctx.jupyter == REAL_JUPYTER


def test_without_a_module_system_jupyter_on_path_is_used_with_a_warning(
    ctx: RunContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A machine with no Lmod and no Environment Modules, but Jupyter installed (the `notebook` extra)."""
    monkeypatch.setattr(envmodules, "LMOD_HOMES", (tmp_path / "no-lmod",))
    monkeypatch.setattr(envmodules, "TCL_COMMANDS", (tmp_path / "no-modulecmd.tcl",))
    for name in ("LMOD_CMD", "MODULESHOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", f"{REAL_JUPYTER.parent}:{SYSTEM_PATH}")
    loading.run(ctx)
    assert ctx.jupyter == REAL_JUPYTER
    assert "no module system found" in caplog.text


def test_without_a_module_system_or_jupyter_the_load_fails(
    ctx: RunContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(envmodules, "LMOD_HOMES", ())
    monkeypatch.setattr(envmodules, "TCL_COMMANDS", ())
    for name in ("LMOD_CMD", "MODULESHOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", SYSTEM_PATH)
    with pytest.raises(StepFailed) as caught:
        loading.run(ctx)
    assert caught.value.reason == "module_load_failed"
    assert "no module system" in caught.value.message
