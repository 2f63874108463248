"""The machine's address and its ports, found with Python's socket API (no `ip` or `ss` needed)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import os
import socket
import struct

_SIOCGIFADDR = 0x8915


def interface_ipv4() -> list[tuple[str, str]]:
    """(interface, IPv4 address) for every interface that has one, in interface order."""
    found: list[tuple[str, str]] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for _, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                reply = fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, request)
            except OSError:
                continue  # the interface has no IPv4 address
            found.append((name, socket.inet_ntoa(reply[20:24])))
    return found


def interface_ipv6() -> list[tuple[str, str]]:
    """(interface, IPv6 address) for every address the kernel lists, in its order; none without IPv6."""
    found: list[tuple[str, str]] = []
    try:
        with open("/proc/net/if_inet6", encoding="ascii") as table:
            rows = table.read().splitlines()
    except OSError:
        return found
    for row in rows:
        fields = row.split()
        if len(fields) == 6 and len(fields[0]) == 32:
            found.append((fields[5], str(ipaddress.IPv6Address(bytes.fromhex(fields[0])))))
    return found


def vm_ipv4() -> str | None:
    """The first global IPv4 address (not loopback, not link-local): what a researcher connects to."""
    return _first_reachable(interface_ipv4())


def vm_ipv6() -> str | None:
    """The first global IPv6 address (not loopback, not link-local)."""
    return _first_reachable(interface_ipv6())


def _first_reachable(addresses: list[tuple[str, str]]) -> str | None:
    for _, address in addresses:
        ip = ipaddress.ip_address(address)
        if not (ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast):
            return address
    return None


def vm_address(bind: str) -> str | None:
    """The VM's address for others to reach a server bound to `bind`, or its sshd for a loopback bind; None if none.

    For a wildcard, the VM's first global address of the bind's family: Jupyter (Tornado) sets IPV6_V6ONLY, so a
    server bound to `::` refuses the VM's IPv4 address (checked with notebook 7.6.5, tornado 6.6.1, Linux with
    net.ipv6.bindv6only=0). A specific address is the VM's own.
    """
    parsed = ipaddress.ip_address(bind)
    if parsed.is_unspecified:
        return vm_ipv6() if parsed.version == 6 else vm_ipv4()
    if parsed.is_loopback:
        return vm_ipv4() or vm_ipv6()
    return bind


def _family(ip: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ipaddress.ip_address(ip).version == 6 else socket.AF_INET


def bound(ip: str, port: int) -> socket.socket:
    """A TCP socket bound to (ip, port) the way Jupyter's Tornado binds one: SO_REUSEADDR, so that a socket lingering
    in TIME_WAIT does not stand in the way while a listener on this or an overlapping address does; and an IPv6
    address for IPv6 alone (IPV6_V6ONLY), so that `::` and `0.0.0.0` are two ports."""
    sock = socket.socket(_family(ip), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((ip, port))
    except OSError:
        sock.close()
        raise
    return sock


def port_free(ip: str, port: int) -> bool:
    """Whether Jupyter could bind (ip, port) now."""
    try:
        bound(ip, port).close()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return False
        raise  # not ours to bind at all (EACCES below 1024, EADDRNOTAVAIL for a foreign address)
    return True


def pick_free_port(ip: str) -> int:
    """A port the kernel considers free on `ip` now."""
    with socket.socket(_family(ip), socket.SOCK_STREAM) as sock:
        sock.bind((ip, 0))
        port: int = sock.getsockname()[1]
        return port


def local_host(ip: str) -> str:
    """The address to reach a server bound to `ip` from this machine."""
    parsed = ipaddress.ip_address(ip)
    if parsed.is_unspecified:
        return "::1" if parsed.version == 6 else "127.0.0.1"
    return ip


def server_url(bind: str, port: int | None, base_url: str, vm_ip: str | None, scheme: str = "http") -> str:
    """The URL (without the token) that reaches a server bound to `bind`: that address when it is a specific one;
    for a wildcard (0.0.0.0, ::), the VM's address `vm_ip`, or this machine's loopback when the VM has none."""
    host = bind
    if ipaddress.ip_address(bind).is_unspecified:
        host = vm_ip or local_host(bind)
    return f"{scheme}://{url_host(host)}:{port}{base_url}"


def url_host(host: str) -> str:
    """`host` as it stands in a URL (IPv6 in brackets)."""
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]"
    return host


def listens(pid: int, port: int) -> bool:
    """Whether the process `pid` itself holds a socket listening on TCP `port`, on any address.

    The listening sockets' inodes (/proc/net/tcp, tcp6) matched against the process's descriptors: who answers on
    a port is not who we started, until this says so.
    """
    wanted = _listening_inodes(port)
    if not wanted:
        return False
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for descriptor in descriptors:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{descriptor}")
        except OSError:
            continue
        if target.startswith("socket:[") and int(target[8:-1]) in wanted:
            return True
    return False


LISTEN = "0A"  # the TCP state in /proc/net/tcp


def _listening_inodes(port: int) -> set[int]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as handle:
                rows = handle.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(int(fields[9]))
    return inodes
