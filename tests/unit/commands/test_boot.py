"""`jupyter-init boot`, in process as root: nothing to bring back, a boot already reported, a plan that is not ours.

Bringing a server back for real, as the boot unit does, is tests/e2e/test_boot.py's (a real account) and the VM
tier's (a real reboot)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from provisioner import boot as kept
from provisioner.commands.boot import boot
from provisioner.errors import UsageError
from provisioner.systemd import SYSTEM_DIR_ENV


@pytest.fixture
def roots_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root: None) -> Path:
    """Root's own directory for what outlives a run, the test's: never this machine's /var/lib/provisioner."""
    directory = tmp_path / "var-lib-provisioner"
    directory.mkdir(mode=0o700)
    monkeypatch.setenv(SYSTEM_DIR_ENV, str(directory))
    return directory


def plan(reported: str = "") -> kept.Plan:
    return kept.Plan(settings={"port": 8008}, urls={}, states=None, environment={}, boots=3, reported=reported)


def test_an_account_nothing_was_kept_for_has_nothing_brought_back(
    roots_directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert boot("alice", 0.0) == 0
    assert (
        capsys.readouterr().out == "nothing to bring back for alice: no run with --launcher systemd is kept for them\n"
    )


def test_a_boot_reported_already_sends_nothing_and_counts_nothing(
    roots_directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current = kept.boot_id()
    assert current is not None
    kept.save("alice", plan(reported=current))
    assert boot("alice", 0.0) == 0
    assert capsys.readouterr().out == "this boot of the VM was reported already (boot 3); nothing to do\n"
    found = kept.load("alice")
    assert found is not None and found[0].boots == 3, "not counted again"


def test_a_plan_that_is_not_what_run_keeps_is_one_line(roots_directory: Path) -> None:
    (roots_directory / "alice.boot.json").write_text('{"settings": {}, "planted": true}')
    with pytest.raises(UsageError, match=r"^the boot plan .*alice\.boot\.json cannot be used: "):
        boot("alice", 0.0)


def test_a_planted_link_in_place_of_the_plan_is_not_followed(roots_directory: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text("{}")
    os.symlink(elsewhere, roots_directory / "alice.boot.json")
    with pytest.raises(UsageError, match="symbolic link"):
        boot("alice", 0.0)
