"""`python -m provisioner`: the same entry point as `jupyter-init`, as the boot unit runs it (`-I -m provisioner`)."""

from __future__ import annotations

import subprocess
import sys

from provisioner import __version__


def test_python_m_provisioner_is_the_command_isolated_from_the_working_directory() -> None:
    shown = subprocess.run(
        [sys.executable, "-I", "-m", "provisioner", "--version"], capture_output=True, text=True, check=False, cwd="/"
    )
    assert (shown.returncode, shown.stdout) == (0, f"jupyter-init {__version__}\n")
    refused = subprocess.run(
        [sys.executable, "-m", "provisioner", "strat"], capture_output=True, text=True, check=False
    )
    assert refused.returncode == 2 and refused.stderr.startswith("jupyter-init: error: 'strat' is not a verb")
