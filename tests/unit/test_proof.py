"""The progress page's proof, in process: its configuration directory is never taken through a link. Jupyter showing
it, beside a site's and an account's configurations, is tests/e2e/test_proof.py's."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner import proof


def test_the_configuration_directory_is_not_taken_through_a_link(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / proof.CONFIG_DIR).symlink_to(elsewhere)
    with pytest.raises(OSError, match="is not a directory"):
        proof.install(tmp_path)
    assert list(elsewhere.iterdir()) == []
