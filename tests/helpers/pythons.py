"""The Python interpreters this machine offers from 3.9 up, the ones we support: `python3 tests/helpers/pythons.py`
prints them.

Found as the machine offers them: pyenv's versions (`pyenv root`, `pyenv versions --bare`), else python3.X on PATH.
CI uses the list for mypy on the oldest; the tests install the wheel into a fresh venv of each.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers.constants import CHECKOUT

OLDEST = (3, 9)
NEWEST = (3, 13)


def interpreters() -> dict[str, Path]:
    """'3.X.Y' -> the interpreter, from 3.9 to 3.13, one per minor version (the newest patch release)."""
    found: dict[tuple[int, int], tuple[tuple[int, ...], Path]] = {}
    for version, path in _candidates():
        numbers = tuple(int(part) for part in version.split("."))
        minor = (numbers[0], numbers[1])
        if OLDEST <= minor <= NEWEST and path.exists() and (minor not in found or found[minor][0] < numbers):
            found[minor] = (numbers, path)
    return {".".join(map(str, numbers)): path for _, (numbers, path) in sorted(found.items())}


def _candidates() -> list[tuple[str, Path]]:
    pyenv = shutil.which("pyenv")
    if pyenv is not None:
        root = Path(subprocess.run([pyenv, "root"], capture_output=True, text=True, check=True).stdout.strip())
        bare = subprocess.run([pyenv, "versions", "--bare"], capture_output=True, text=True, check=True).stdout
        return [
            (version, root / "versions" / version / "bin" / "python")
            for version in bare.split()
            if re.fullmatch(r"3\.\d+\.\d+", version)
        ]
    candidates = []
    for minor in range(OLDEST[1], NEWEST[1] + 1):
        path = shutil.which(f"python3.{minor}")
        if path is not None:
            version = subprocess.run(
                [path, "-c", "import platform; print(platform.python_version())"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            candidates.append((version, Path(path)))
    return candidates


if __name__ == "__main__":
    for version, path in interpreters().items():
        print(version, path)
    sys.exit(0)


def build_wheel(directory: Path) -> Path:
    """The wheel of this checkout, built now into `directory`."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(directory), str(CHECKOUT)], check=True
    )
    [wheel] = directory.glob("jupyter_init-*.whl")
    from provisioner import __version__

    assert wheel.name.startswith(f"jupyter_init-{__version__}-")
    return wheel
