"""`jupyter-init check`: validate a definition without running it."""

from __future__ import annotations

import argparse
from pathlib import Path

from provisioner.commands.common import load_definition


def check(path: Path | None) -> int:
    """ConfigError (from loading) lists every problem; here, the definition is whole."""
    definition = load_definition(path)
    states = len(definition.states)
    print(f"{definition.source}: ok ({states} states, {len(definition.transitions)} transitions)")
    return 0


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Validate a definition whole, as `run` does before it starts, and list every problem, one per line, with "
        "where it is. Only the file is judged, not this machine (whether a [settings] user or directory exists is for "
        "the run)."
    )
    parser.add_argument("--states", type=Path, metavar="FILE", help="definition to check (default: the shipped one)")


def main(args: argparse.Namespace, started: float) -> int:
    return check(args.states)
