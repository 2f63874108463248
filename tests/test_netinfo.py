from __future__ import annotations

import ipaddress
import socket

from provisioner import netinfo


def test_a_listening_port_is_not_free_and_a_closed_one_is() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not netinfo.port_free("0.0.0.0", port)
        assert not netinfo.port_free("127.0.0.1", port)
    assert netinfo.port_free("0.0.0.0", port)


def test_a_picked_port_is_free() -> None:
    port = netinfo.pick_free_port("0.0.0.0")
    assert netinfo.port_free("0.0.0.0", port)


def test_the_vm_address_is_a_global_ipv4_address_when_there_is_one() -> None:
    address = netinfo.vm_ipv4()
    others = [ip for _, ip in netinfo.interface_ipv4() if not ipaddress.IPv4Address(ip).is_loopback]
    if others:
        assert address is not None
        assert not ipaddress.IPv4Address(address).is_loopback
    assert ("lo", "127.0.0.1") in netinfo.interface_ipv4()


def test_a_server_on_every_address_is_reached_on_loopback() -> None:
    assert netinfo.local_host("0.0.0.0") == "127.0.0.1"
    assert netinfo.local_host("::") == "::1"
    assert netinfo.url_host("::1") == "[::1]"
    assert netinfo.url_host("10.0.0.5") == "10.0.0.5"
