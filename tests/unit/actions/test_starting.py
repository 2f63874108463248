from __future__ import annotations

import stat
import sys
from pathlib import Path

from provisioner.actions import starting
from provisioner.context import RunContext
from tests.helpers.constants import TOKEN


def test_the_server_gets_the_token_in_its_environment_and_a_private_log(ctx: RunContext, tmp_path: Path) -> None:
    ctx.out.mkdir(mode=0o700)
    script = tmp_path / "jupyter-notebook"
    script.write_text(f'#!{sys.executable}\nimport os\nprint("token:" + os.environ["JUPYTER_TOKEN"][:4])\n')
    script.chmod(0o755)
    ctx.jupyter, ctx.port, ctx.env = script, 8008, {"PATH": "/usr/bin:/bin"}
    starting.run(ctx)
    assert ctx.process is not None and ctx.process.wait(10) == 0
    assert stat.S_IMODE(ctx.log_path.stat().st_mode) == 0o600
    log = ctx.log_path.read_text()
    assert "starting jupyter-notebook on port 8008" in log
    assert f"token:{TOKEN[:4]}" in log
    assert ctx.process.pid == ctx.pid
