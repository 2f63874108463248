"""What a guest's pip installs from, offline: the checkout's wheel and everything `jupyter-init[notebook]` needs, as
wheels for the guest's Python, plus current pip and setuptools (for `venv --upgrade-deps`).

The dependencies are downloaded once per guest Python into the cache, by a pip running on a Python of the guest's
version (tests/helpers/pythons.py finds one), for the platforms a Debian 11 glibc can run; the checkout's wheel is
built afresh each run.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.e2e.vm.debian import cache_root
from tests.helpers.constants import CHECKOUT
from tests.helpers.pythons import build_wheel, interpreters

PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "linux_x86_64")


def downloader(version: str) -> Path:
    """A current pip, in a venv of CPython `version` (from tests/helpers/pythons.py) in the cache: pip evaluates the
    dependencies' markers (`tomli; python_version < "3.11"`) for the Python it runs on, whatever --python-version
    says, and pip 23 backtracks for many minutes over Notebook's dependencies on 3.9 where today's takes seconds."""
    venv = cache_root() / f"downloader-{version}"
    pip = venv / "bin" / "pip"
    if not pip.exists():
        found = [path for full, path in interpreters().items() if full.startswith(version + ".")]
        if not found:
            pytest.fail(
                f"the VM tier needs a Python {version} here to gather its guest's wheels (see tests/helpers/pythons.py)"
            )
        subprocess.run([str(found[0]), "-m", "venv", "--upgrade-deps", str(venv)], check=True, capture_output=True)
    return pip


def for_python(version: str, work: Path) -> Path:
    """A directory of wheels for CPython `version` (X.Y): ours, and all it needs with the notebook extra."""
    built = work / "ours"
    built.mkdir(parents=True, exist_ok=True)
    wheel = build_wheel(built)
    project = (CHECKOUT / "pyproject.toml").read_bytes()
    key = hashlib.sha256(project + repr(PLATFORMS).encode()).hexdigest()[:12]  # what the downloads depend on
    deps = cache_root() / f"wheels-{version}-{key}"
    if not (deps / "done").exists():
        shutil.rmtree(deps, ignore_errors=True)
        with tempfile.TemporaryDirectory() as scratch:
            shutil.copy(wheel, scratch)
            abi = "cp" + version.replace(".", "")
            subprocess.run(
                [
                    *(str(downloader(version)), "download", "--quiet", "--dest", str(deps)),
                    *("--only-binary=:all:", "--python-version", version, "--implementation", "cp"),
                    *("--abi", abi, "--abi", "abi3", "--abi", "none"),
                    *(part for platform in PLATFORMS for part in ("--platform", platform)),
                    *("--find-links", scratch),
                    f"{wheel.name.split('-')[0].replace('_', '-')}[notebook]=={wheel.name.split('-')[1]}",
                    "pip",
                    "setuptools",
                    "wheel",
                ],
                check=True,
            )
        for ours in deps.glob("jupyter_init-*.whl"):
            ours.unlink()  # the checkout's own is added fresh each time
        (deps / "done").write_text("")
    house = work / f"wheelhouse-{version}"
    shutil.rmtree(house, ignore_errors=True)
    shutil.copytree(deps, house, ignore=shutil.ignore_patterns("done"))
    shutil.copy(wheel, house)
    return house
