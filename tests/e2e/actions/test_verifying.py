from __future__ import annotations

import subprocess
import time

import pytest

from provisioner.actions import verifying
from provisioner.context import RunContext
from provisioner.errors import StepFailed
from provisioner.probe import probe
from tests.helpers.net import serve_once


def test_a_server_that_exits_fails_at_once_with_the_end_of_its_log(ctx: RunContext) -> None:
    ctx.out.mkdir()
    ctx.log_path.write_text("line one\nImportError: no module named notebook\n")
    ctx.process = subprocess.Popen(["sh", "-c", "sleep 0.3; exit 3"])
    ctx.pid, ctx.port, ctx.server_started = ctx.process.pid, 1, time.monotonic()
    with pytest.raises(StepFailed) as caught:
        verifying.run(ctx)
    assert caught.value.reason == "failed_to_start"
    assert "exited with code 3" in caught.value.message
    assert "ImportError: no module named notebook" in caught.value.message


def test_a_server_that_lost_its_port_is_port_in_use(ctx: RunContext) -> None:
    ctx.out.mkdir()
    ctx.log_path.write_text(
        "[C ServerApp] ERROR: the Jupyter server could not be started because port 8008 is not available.\n"
    )
    ctx.process = subprocess.Popen(["sh", "-c", "exit 1"])
    ctx.pid, ctx.port, ctx.server_started = ctx.process.pid, 8008, time.monotonic()
    with pytest.raises(StepFailed) as caught:
        verifying.run(ctx)
    assert caught.value.reason == "port_in_use"


def test_a_probe_has_one_deadline_for_the_whole_answer_however_slowly_it_trickles() -> None:
    port, _ = serve_once(b"HTTP/1.1 200 OK\r\n", delay=0.2)
    started = time.monotonic()
    assert probe("127.0.0.1", port, None, timeout=0.5) is None
    assert time.monotonic() - started < 1.5
