"""What one run knows: where its files go, the URL it reports, and the environment its server starts with."""

from __future__ import annotations

from pathlib import Path

from provisioner.context import RunContext
from provisioner.secret import TOKEN_ENV, Secret
from provisioner.settings import Settings

TOKEN = "a-token-of-many-characters"


def test_the_log_goes_in_the_output_directory_and_the_url_names_the_reachable_address(tmp_path: Path) -> None:
    ctx = RunContext(Settings(output_dir=tmp_path / "out", base_url="/user/alice/"), vm_ip="192.0.2.10", port=8008)
    assert ctx.log_path == tmp_path / "out" / "jupyter.log"
    assert ctx.url() == "http://192.0.2.10:8008/user/alice/"
    assert TOKEN not in ctx.url()


def test_a_run_on_loopback_reports_loopback_whatever_the_vms_address() -> None:
    ctx = RunContext(Settings(ip="127.0.0.1"), vm_ip="192.0.2.10", port=9000)
    assert ctx.url() == "http://127.0.0.1:9000/"


def test_the_token_is_in_the_servers_environment_only_and_never_in_what_the_run_keeps(tmp_path: Path) -> None:
    ctx = RunContext(Settings(token=Secret(TOKEN)), vm_ip="192.0.2.10", env={"PATH": "/usr/bin"})
    assert ctx.server_env() == {"PATH": "/usr/bin", TOKEN_ENV: TOKEN}
    assert TOKEN_ENV not in ctx.env, "the run's own copy stays without it"
    assert TOKEN not in repr(ctx)
