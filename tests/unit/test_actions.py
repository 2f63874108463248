"""The actions' package: its registry is its modules, and a server is stopped only while it is still the run's."""

from __future__ import annotations

import pkgutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner import actions, server
from provisioner.context import RunContext
from provisioner.settings import Settings


def test_every_module_of_the_package_is_an_action_named_after_it_with_its_reasons() -> None:
    names = {info.name for info in pkgutil.iter_modules(actions.__path__)}
    assert set(actions.registry()) == names
    assert actions.reasons()["loading"] == actions.registry()["loading"].reasons
    assert "module_load_failed" in actions.reasons()["loading"]


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    """A process in a session of its own, as a server is started."""
    process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield process
    process.kill()
    process.wait()


def test_a_server_handed_over_is_never_stopped(child: subprocess.Popen[bytes], tmp_path: Path) -> None:
    ctx = RunContext(Settings(output_dir=tmp_path), vm_ip="192.0.2.10", pid=child.pid, process=child)
    ctx.pid_start, ctx.handed_over = server.start_time(child.pid), True
    assert actions.stop_unfinished(ctx) is False
    assert child.poll() is None


def test_a_server_the_run_started_and_still_holds_is_stopped(child: subprocess.Popen[bytes], tmp_path: Path) -> None:
    ctx = RunContext(Settings(output_dir=tmp_path), vm_ip="192.0.2.10", pid=child.pid, process=child)
    ctx.pid_start = server.start_time(child.pid)
    assert actions.stop_unfinished(ctx) is True
    assert child.poll() is not None
    assert actions.stop_unfinished(RunContext(Settings(output_dir=tmp_path), vm_ip="192.0.2.10")) is False
