"""The examples an operator copies are checked by the real tools: cloud-init's schema validator, systemd-analyze."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers.constants import CHECKOUT, PREREQUISITES

EXAMPLES = CHECKOUT / "examples"


CLOUD_CONFIGS = sorted((EXAMPLES / "cloud-init").glob("*.yaml"))


def cloud_init_schema(path: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("cloud-init") is None:
        pytest.fail(f"cloud-init is not installed; {PREREQUISITES} installs it")
    return subprocess.run(
        ["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("path", CLOUD_CONFIGS, ids=lambda path: path.name)
def test_every_cloud_config_example_is_valid(path: Path) -> None:
    result = cloud_init_schema(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid cloud-config" in result.stdout


def test_the_validator_rejects_a_broken_cloud_config(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("#cloud-config\nwrite_files:\n  - content: x\n    permissions: 600\n    bogus_key: 1\n")
    result = cloud_init_schema(broken)
    assert result.returncode != 0


def test_the_recommended_example_keeps_the_token_off_every_command_line() -> None:
    config = yaml.safe_load((EXAMPLES / "cloud-init" / "user-data.yaml").read_text())
    [token_file] = [entry for entry in config["write_files"] if "${JUPYTER_TOKEN}" in entry["content"]]
    assert token_file["permissions"] == "0600"
    commands = [" ".join(command) if isinstance(command, list) else command for command in config["runcmd"]]
    assert not [command for command in commands if "${JUPYTER_TOKEN}" in command]
    assert any("--token-file" in command and token_file["path"] in command for command in commands)
    assert not [command for command in commands if "status --wait" in command]  # it would wait for itself
