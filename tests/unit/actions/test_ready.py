from __future__ import annotations

import json
import stat

import pytest

from provisioner.actions import ready
from provisioner.context import RunContext
from provisioner.errors import StepFailed
from tests.helpers.constants import TOKEN


def test_the_info_files_are_written_private_and_the_server_is_handed_over(ctx: RunContext) -> None:
    ctx.out.mkdir(mode=0o700)
    ctx.port, ctx.pid = 8008, 4242
    ready.run(ctx)
    assert ctx.handed_over
    data = json.loads((ctx.out / "jupyter_info.json").read_text())
    assert data["url"] == f"http://127.0.0.1:8008/?token={TOKEN}"  # the address it is bound to
    assert data["pid"] == 4242
    text = (ctx.out / "jupyter_info.txt").read_text()
    assert f"Token:     {TOKEN}" in text and "kill 4242" in text
    for name in ("jupyter_info.json", "jupyter_info.txt"):
        assert stat.S_IMODE((ctx.out / name).stat().st_mode) == 0o600
    assert sorted(p.name for p in ctx.out.iterdir()) == ["jupyter_info.json", "jupyter_info.txt"]  # no temp files


def test_a_missing_output_dir_is_output_unwritable_and_nothing_is_handed_over(ctx: RunContext) -> None:
    ctx.port, ctx.pid = 8008, 4242
    with pytest.raises(StepFailed) as caught:
        ready.run(ctx)
    assert caught.value.reason == "output_unwritable"
    assert not ctx.handed_over
