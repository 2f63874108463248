"""The docs' code run against the real thing: the receiver docs/reference/callbacks.md gives platforms verifies every
callback of a real run (the rest of the docs' checks are tests/project/test_docs.py's, in process)."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.cli import cli_env, run_cli
from tests.helpers.constants import TOKEN
from tests.helpers.docs import WHERE, blocks
from tests.helpers.net import free_port
from tests.helpers.receiver import serving


def test_the_documented_receiver_verifies_every_callback_of_a_real_run(module_tree: Path, reap: Path) -> None:
    [snippet] = [block for block in blocks(WHERE["receiver"].text()) if block.lang == "python"]
    namespace: dict[str, Any] = {}
    exec("\n".join(snippet.lines), namespace)
    expected = {
        "/progress": ["validating", "loading", "port_check", "starting", "verifying", "ready"],
        "/start": ["init_started"],
        "/complete": ["init_completed"],
    }
    with serving() as callbacks:
        args = ["run", "--port", str(free_port()), "--progress-url", callbacks.url("/progress")]
        args += ["--start-url", callbacks.url("/start"), "--complete-url", callbacks.url("/complete")]
        run = run_cli(args, cli_env(reap, module_tree, JUPYTER_TOKEN=TOKEN))
        assert run.returncode == 0, run.stderr
        callbacks.wait_for(sum(map(len, expected.values())))
        verified: dict[str, list[str]] = {}
        for received in callbacks.received:
            signature = received.headers["X-Jupyter-Init-Signature"]
            assert signature == "sha256=" + hmac.new(TOKEN.encode(), received.body, hashlib.sha256).hexdigest()
            fields = namespace["verify"](received.body, signature, TOKEN.encode())
            verified.setdefault(received.path, []).append(fields["status"])
            with pytest.raises(ValueError, match="bad signature"):
                namespace["verify"](received.body, signature, b"forged")
    assert verified == expected
