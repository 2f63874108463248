"""Module files and directories of programs, for Lmod and PATH."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def write_module(root: Path, name: str, body: str) -> None:
    (root / f"{name}.lua").write_text(body)


def make_bin(directory: Path, programs: Mapping[str, str | Path]) -> Path:
    """A directory of executables: a Path is linked to, a str is a script's text."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, what in programs.items():
        target = directory / name
        if isinstance(what, Path):
            target.symlink_to(what)
        else:
            target.write_text(what)
            target.chmod(0o755)
    return directory
