from __future__ import annotations

import dataclasses
import stat

import pytest

from provisioner.actions import validating
from provisioner.context import RunContext
from provisioner.errors import StepFailed
from provisioner.settings import Secret


def test_a_good_token_passes_and_the_output_dir_is_created_private(ctx: RunContext) -> None:
    validating.run(ctx)
    assert stat.S_IMODE(ctx.out.stat().st_mode) == 0o700


def test_an_existing_open_output_dir_is_tightened(ctx: RunContext) -> None:
    ctx.out.mkdir(mode=0o755)
    ctx.out.chmod(0o755)
    validating.run(ctx)
    assert stat.S_IMODE(ctx.out.stat().st_mode) == 0o700


def test_a_file_in_place_of_the_output_dir_is_output_unwritable(ctx: RunContext) -> None:
    ctx.out.write_text("not a directory")
    with pytest.raises(StepFailed) as caught:
        validating.run(ctx)
    assert caught.value.reason == "output_unwritable"


@pytest.mark.parametrize("token", [None, "", " \t", "two words", "new\nline", "bell\x07", "naïve"])
def test_an_unusable_token_is_no_token(ctx: RunContext, token: str | None) -> None:
    ctx.settings = dataclasses.replace(ctx.settings, token=None if token is None else Secret(token))
    with pytest.raises(StepFailed) as caught:
        validating.run(ctx)
    assert caught.value.reason == "no_token"
    assert token is None or token.strip() == "" or token not in caught.value.message


def test_a_short_token_passes_with_a_warning(ctx: RunContext, caplog: pytest.LogCaptureFixture) -> None:
    ctx.settings = dataclasses.replace(ctx.settings, token=Secret("short"))
    validating.run(ctx)
    assert "5 characters long" in caplog.text
    assert "short" not in caplog.text.replace("5 characters long", "")
