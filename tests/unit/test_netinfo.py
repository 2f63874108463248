from __future__ import annotations

import ipaddress
import socket

import pytest

from provisioner import netinfo
from tests.helpers.net import has_ipv6_loopback


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


@pytest.mark.parametrize(
    ("bind", "vm_ip", "url"),
    [
        ("0.0.0.0", "192.0.2.10", "http://192.0.2.10:8008/"),
        ("0.0.0.0", None, "http://127.0.0.1:8008/"),
        ("::", "2001:db8::5", "http://[2001:db8::5]:8008/"),
        ("::", None, "http://[::1]:8008/"),
        ("127.0.0.1", "192.0.2.10", "http://127.0.0.1:8008/"),
        ("::1", "192.0.2.10", "http://[::1]:8008/"),
        ("192.0.2.20", "192.0.2.20", "http://192.0.2.20:8008/"),
        ("2001:db8::7", "2001:db8::7", "http://[2001:db8::7]:8008/"),
    ],
)
def test_the_url_names_the_bound_address_and_the_vms_only_for_a_wildcard(
    bind: str, vm_ip: str | None, url: str
) -> None:
    assert netinfo.server_url(bind, 8008, "/", vm_ip) == url


def test_the_url_ends_in_the_base_url() -> None:
    assert netinfo.server_url("::1", 8008, "/user/alice/", None) == "http://[::1]:8008/user/alice/"


def test_a_wildcard_is_reached_by_the_vms_address_of_its_own_family_and_a_specific_address_is_itself() -> None:
    assert netinfo.vm_address("0.0.0.0") == netinfo.vm_ipv4()
    assert netinfo.vm_address("::") == netinfo.vm_ipv6()
    assert netinfo.vm_address("192.0.2.20") == "192.0.2.20"
    assert netinfo.vm_address("127.0.0.1") == (netinfo.vm_ipv4() or netinfo.vm_ipv6())


def test_the_vms_ipv6_address_is_its_first_global_one() -> None:
    listed = netinfo.interface_ipv6()
    if has_ipv6_loopback():
        assert ("lo", "::1") in listed
    reachable = [
        ip for _, ip in listed if not (ipaddress.IPv6Address(ip).is_loopback or ipaddress.IPv6Address(ip).is_link_local)
    ]
    assert netinfo.vm_ipv6() == (reachable[0] if reachable else None)


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 on this machine")
def test_ipv6_and_ipv4_wildcards_are_two_ports_as_jupyter_binds_them() -> None:
    # Tornado binds `::` for IPv6 alone: a server on 0.0.0.0 does not keep Jupyter from `::`, nor the reverse.
    with netinfo.bound("0.0.0.0", 0) as ipv4:
        ipv4.listen()
        port = ipv4.getsockname()[1]
        assert not netinfo.port_free("0.0.0.0", port)
        assert netinfo.port_free("::", port)
        with netinfo.bound("::", port) as ipv6:
            ipv6.listen()
            assert not netinfo.port_free("::", port)
