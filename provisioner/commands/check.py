"""`jupyter-init check`: validate a definition without running it."""

from __future__ import annotations

from pathlib import Path

from provisioner.commands.common import load_definition


def check(path: Path | None) -> int:
    """ConfigError (from loading) lists every problem; here, the definition is whole."""
    definition = load_definition(path)
    states = len(definition.states)
    print(f"{definition.source}: ok ({states} states, {len(definition.transitions)} transitions)")
    return 0
