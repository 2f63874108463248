from __future__ import annotations

import dataclasses
import stat

import pytest

from provisioner.actions import validating
from provisioner.context import RunContext
from provisioner.errors import StepFailed
from provisioner.secret import Secret


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


@pytest.mark.parametrize("ip", ["127.0.0.1", "::1", "127.0.0.2", "::ffff:127.0.0.1"])
def test_a_weak_token_on_loopback_passes_with_a_warning(
    ctx: RunContext, caplog: pytest.LogCaptureFixture, ip: str
) -> None:
    ctx.settings = dataclasses.replace(ctx.settings, token=Secret("short"), ip=ip)
    validating.run(ctx)
    assert "the token is 5 characters long; at least 16 are needed; accepted only because" in caplog.text
    assert "short" not in caplog.text.replace("5 characters long", "")


@pytest.mark.parametrize("ip", ["0.0.0.0", "::", "192.0.2.7", "2001:db8::7", "::ffff:192.0.2.7"])
@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("short", "the token is 5 characters long; at least 16 are needed"),
        ("x" * 15, "the token is 15 characters long; at least 16 are needed"),
        ("a" * 40, "the token has fewer than 4 different characters"),
        ("abcabcabcabcabcabcabc", "the token has fewer than 4 different characters"),
    ],
)
def test_a_weak_token_beyond_loopback_is_no_token_and_leaves_nothing(
    ctx: RunContext, ip: str, token: str, why: str
) -> None:
    ctx.settings = dataclasses.replace(ctx.settings, token=Secret(token), ip=ip)
    with pytest.raises(StepFailed) as caught:
        validating.run(ctx)
    assert (caught.value.reason, caught.value.message) == (
        "no_token",
        f"{why} for a server listening on {ip} (beyond loopback)",
    )
    assert not ctx.out.exists(), "refused before the output directory is made"


def test_sixteen_characters_of_four_kinds_pass_beyond_loopback_with_the_advice(
    ctx: RunContext, caplog: pytest.LogCaptureFixture
) -> None:
    ctx.settings = dataclasses.replace(ctx.settings, token=Secret("abcdabcdabcdabcd"), ip="0.0.0.0")
    validating.run(ctx)
    assert "the token is 16 characters long; 32 or more random characters are advised" in caplog.text
