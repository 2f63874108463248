"""--launcher systemd, its unit as written: the command and the unit the provisioner asks for, and the boot unit,
checked by the real `systemd-analyze verify`. Runs through stand-ins for systemd are tests/e2e/test_systemd.py's."""

from __future__ import annotations

import dataclasses
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from provisioner import boot, systemd
from tests.helpers.constants import TOKEN
from tests.helpers.systemd import ARGV


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is not installed (Debian package systemd)")
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True, check=False
    )


def test_the_command_runs_the_server_as_the_user_with_the_token_only_in_the_environment_file(
    unit: systemd.Unit,
) -> None:
    unit.env_file.parent.mkdir(mode=0o700)
    systemd.write_env_file(unit)
    command = systemd.run_command(unit)
    assert command[:4] == ["systemd-run", "--quiet", "--collect", "--unit=jupyter-notebook-nobody-8008.service"]
    nobody = pwd.getpwnam("nobody")
    for expected in (
        "--property=NoNewPrivileges=yes",
        f"--property=EnvironmentFile={unit.env_file}",
        f"--property=User={nobody.pw_uid}",
        "--property=KillMode=control-group",
    ):
        assert expected in command
    # No StandardOutput=: systemd would open it as root. A shell running as the user opens the log.
    assert not [part for part in command if "StandardOutput" in part or "StandardError" in part]
    assert command[command.index("--") + 1 :] == ["/bin/sh", "-c", 'exec "$$@" >>"$$0" 2>&1', str(unit.log), *ARGV]
    assert not [part for part in command if TOKEN in part]

    info = unit.env_file.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o400, 0)  # root's, in root's directory: systemd reads it
    text = unit.env_file.read_text()
    assert f'JUPYTER_TOKEN="{TOKEN}"' in text
    assert 'ODD="a \\"\\$b\\" \\`c\\` \\\\d"' in text  # quoted as systemd reads it back


def test_the_unit_it_asks_for_passes_systemd_analyze_verify(unit: systemd.Unit, tmp_path: Path) -> None:
    unit.env_file.parent.mkdir(mode=0o700)
    systemd.write_env_file(unit)
    checked = tmp_path / unit.name
    checked.write_text(systemd.unit_file(dataclasses.replace(unit, argv=("/usr/bin/true", *ARGV[1:]))))
    result = verify(checked)
    assert result.returncode == 0, result.stderr


def test_the_boot_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    (tmp_path / boot.TEMPLATE).write_text(boot.unit_text())
    instance = tmp_path / boot.TEMPLATE.replace("@", "@root")
    instance.symlink_to(boot.TEMPLATE)
    result = verify(instance)
    assert result.returncode == 0, result.stderr


def test_a_broken_unit_fails_verification(tmp_path: Path) -> None:
    broken = tmp_path / "broken.service"
    broken.write_text("[Service]\nExecStart=not/absolute\n")
    assert verify(broken).returncode != 0
