from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.context import RunContext
from provisioner.secret import Secret
from provisioner.settings import Settings
from tests.conftest import TOKEN


@pytest.fixture
def ctx(tmp_path: Path) -> RunContext:
    """A run context with a private HOME and the test token."""
    home = tmp_path / "home"
    home.mkdir()
    return RunContext(settings=Settings(token=Secret(TOKEN), home=home, ip="127.0.0.1"))
