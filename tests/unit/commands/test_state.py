"""`jupyter-init state`'s table: what it says of a server that a reboot took away, and of a run at a later boot."""

from __future__ import annotations

from typing import Any

from provisioner.boot import boot_id
from provisioner.commands.state import render_state


def dump(**server: Any) -> dict[str, Any]:
    return {
        "status": "gone",
        "output_dir": "/home/alice/.jupyter",
        "state": "ready",
        "server": {"pid": 4242, "port": 8008, "alive": False, **server},
        "history": [],
        "callbacks": [],
    }


def test_a_server_started_before_the_last_boot_is_said_to_be_so() -> None:
    shown = render_state(dump(boot_id="an-earlier-boot"))
    assert "server:     pid 4242, port 8008 (not running: it was started before the VM last booted)" in shown


def test_a_server_of_this_boot_that_is_gone_is_only_not_running() -> None:
    assert "(not running)" in render_state(dump(boot_id=boot_id()))
    assert "(not running)" in render_state(dump())  # a record from before boots were recorded


def test_a_run_at_a_later_boot_says_which() -> None:
    shown = render_state(dump(boot_id=boot_id(), alive=True) | {"boot": 3, "status": "ready"})
    assert "boot:       3 (the run that brought the server back after a reboot)" in shown
