from __future__ import annotations

import dataclasses
import socket

import pytest

from provisioner.actions import port_check
from provisioner.context import RunContext
from provisioner.errors import StepFailed


def test_a_free_port_is_taken_as_given(ctx: RunContext) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx.settings = dataclasses.replace(ctx.settings, port=port)
    port_check.run(ctx)
    assert ctx.port == port


def test_a_port_in_use_is_port_in_use(ctx: RunContext) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        ctx.settings = dataclasses.replace(ctx.settings, port=sock.getsockname()[1])
        with pytest.raises(StepFailed) as caught:
            port_check.run(ctx)
    assert caught.value.reason == "port_in_use"


def test_auto_picks_a_free_port(ctx: RunContext) -> None:
    ctx.settings = dataclasses.replace(ctx.settings, port=None)
    port_check.run(ctx)
    assert ctx.port is not None and ctx.port > 0


def test_an_address_not_on_this_machine_is_failed_to_start(ctx: RunContext) -> None:
    ctx.settings = dataclasses.replace(ctx.settings, ip="192.0.2.123", port=8008)
    with pytest.raises(StepFailed) as caught:
        port_check.run(ctx)
    assert caught.value.reason == "failed_to_start"
