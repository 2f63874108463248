from __future__ import annotations

from pathlib import Path

from provisioner.actions import starting
from provisioner.context import RunContext
from tests.helpers.constants import TOKEN


def test_the_command_line_never_holds_the_token_and_never_retries_ports(ctx: RunContext) -> None:
    ctx.jupyter, ctx.port = Path("/opt/jupyter/bin/jupyter-notebook"), 8008
    argv = starting.command(ctx)
    assert argv[:5] == [
        "/opt/jupyter/bin/jupyter-notebook",
        "--no-browser",
        "--ip=127.0.0.1",
        "--port=8008",
        "--ServerApp.port_retries=0",
    ]
    assert not [arg for arg in argv if TOKEN in arg or "token" in arg.lower()]
