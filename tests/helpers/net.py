"""Ports and addresses of this machine."""

from __future__ import annotations

import contextlib
import socket
import threading
import time


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def has_ipv6_loopback() -> bool:
    """Whether this machine can bind ::1 (a container may have IPv6 turned off)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def serve_once(answer: bytes, delay: float) -> tuple[int, threading.Thread]:
    """A socket that answers one connection with `answer`, a byte every `delay` seconds."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def answer_slowly() -> None:
        with listener, contextlib.suppress(OSError):
            connection, _ = listener.accept()
            with connection:
                connection.recv(4096)
                for byte in answer:
                    connection.sendall(bytes([byte]))
                    time.sleep(delay)

    thread = threading.Thread(target=answer_slowly, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread
