from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from provisioner.actions import loading
from provisioner.context import RunContext
from provisioner.errors import StepFailed
from tests.conftest import SYSTEM_PATH


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


def test_no_module_and_no_jupyter_is_jupyter_not_found(ctx: RunContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    ctx.settings = dataclasses.replace(ctx.settings, module="")
    with pytest.raises(StepFailed) as caught:
        loading.run(ctx)
    assert caught.value.reason == "jupyter_not_found"
