"""`jupyter-init check`, in process: a valid definition is said to be one, with its size."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.commands.check import check
from provisioner.errors import ConfigError
from tests.helpers.definitions import shipped, shipped_definition, to_toml


def test_the_shipped_definition_is_valid_and_its_size_is_said(capsys: pytest.CaptureFixture[str]) -> None:
    assert check(None) == 0
    definition = shipped()
    said = capsys.readouterr().out
    assert (
        said
        == f"{definition.source}: ok ({len(definition.states)} states, {len(definition.transitions)} transitions)\n"
    )


def test_a_broken_definition_is_one_error_with_every_problem(tmp_path: Path) -> None:
    data = shipped_definition()
    data["states"][2]["action"] = "teleporting"
    data["transitions"].append({"source": "nowhere", "dest": "ready", "trigger": "ok"})
    states = tmp_path / "states.toml"
    states.write_text(to_toml(data))
    with pytest.raises(ConfigError) as caught:
        check(states)
    paths = [problem.path for problem in caught.value.problems]
    assert "states[2].action" in paths and len(paths) >= 2
