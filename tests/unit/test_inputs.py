"""Root's own inputs: the token file and the callbacks file, whose URLs stay off every command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner import inputs
from provisioner.errors import UsageError

PASSWORD, SIGNATURE = "pl4tform-Passw0rd-77", "sig-9d8c7b6a5f4e3d2c"  # distinctive: found anywhere, they leaked


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('start_url = "http://a.example/"\ncolour = "blue"\n', "unknown keys 'colour'; it holds start_url"),
        (f'start_url = "ftp://platform:{PASSWORD}@a.example/"\n', "start_url is not an http or https URL with a host"),
        ("start_url = 8008\n", "start_url is not an http or https URL with a host"),
        ('start_url = "http://a.example/\n', "is not valid TOML"),
    ],
)
def test_a_callbacks_file_that_is_not_one_is_one_line(tmp_path: Path, text: str, why: str) -> None:
    path = tmp_path / "callbacks.toml"
    path.write_text(text)
    with pytest.raises(UsageError) as refused:
        inputs.callbacks_file(path)
    assert why in refused.value.message and PASSWORD not in refused.value.message
