from __future__ import annotations

import dataclasses

import pytest

from provisioner.actions import ready
from provisioner.context import RunContext
from tests.helpers.constants import TOKEN


@pytest.mark.parametrize(
    ("bind", "url", "tunnel"),
    [
        ("0.0.0.0", "http://192.0.2.10:8008/", "ssh -L 8008:127.0.0.1:8008 USER@192.0.2.10"),
        ("::", "http://[2001:db8::5]:8008/", "ssh -L 8008:[::1]:8008 USER@2001:db8::5"),
        ("192.0.2.20", "http://192.0.2.20:8008/", "ssh -L 8008:192.0.2.20:8008 USER@192.0.2.20"),
    ],
)
def test_a_server_others_can_reach_is_opened_at_its_url_or_through_a_tunnel_to_its_address(
    ctx: RunContext, bind: str, url: str, tunnel: str
) -> None:
    vm_ip = {"0.0.0.0": "192.0.2.10", "::": "2001:db8::5"}.get(bind, bind)
    ctx = dataclasses.replace(ctx, settings=dataclasses.replace(ctx.settings, ip=bind), vm_ip=vm_ip, port=8008)
    data = ready.info(ctx)
    assert (data["url"], data["tunnel"], data["vm_ip"]) == (f"{url}?token={TOKEN}", tunnel, vm_ip)
    assert data["connect"] == f"open the url in a browser, or tunnel: {tunnel}"
    text = ready.render_text(data)
    assert f"  Open {url}?token={TOKEN} in a browser.\n" in text and f"    {tunnel}\n" in text


@pytest.mark.parametrize(("bind", "far_end"), [("127.0.0.1", "127.0.0.1"), ("::1", "[::1]")])
def test_a_server_on_loopback_is_reached_through_a_tunnel_to_that_address(
    ctx: RunContext, bind: str, far_end: str
) -> None:
    ctx = dataclasses.replace(ctx, settings=dataclasses.replace(ctx.settings, ip=bind), vm_ip="192.0.2.10", port=8008)
    data = ready.info(ctx)
    tunnel = f"ssh -L 8008:{far_end}:8008 USER@192.0.2.10"
    assert (data["url"], data["tunnel"]) == (f"http://{far_end}:8008/?token={TOKEN}", tunnel)
    assert data["connect"].startswith("the server listens on the VM's loopback address only")
    text = ready.render_text(data)
    assert "loopback address only: tunnel port 8008 first:" in text and f"    {tunnel}\n" in text
    assert "in a browser." not in text  # its URL reaches it only through the tunnel
