"""Asking a server over HTTP: its status, the token in a header only when given, one deadline for the whole answer."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

from provisioner.probe import REQUEST_TIMEOUT, accepts, exchange, probe
from tests.helpers.net import free_port

OK = b"HTTP/1.1 200 OK\r\nServer: test\r\nContent-Length: 0\r\n\r\n"


@contextlib.contextmanager
def answering(reply: bytes, pause: float = 0.0) -> Iterator[tuple[int, list[bytes]]]:
    """A listener on 127.0.0.1 that answers each connection with `reply`, a byte every `pause` seconds if given;
    the requests it read, in order."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.02)  # closing a listener does not wake an accept() blocked on it: look again, often
    seen: list[bytes] = []
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with connection, contextlib.suppress(OSError):
                seen.append(connection.recv(65536))
                for start in range(0, len(reply), 1 if pause else len(reply)):
                    connection.sendall(reply[start : start + (1 if pause else len(reply))])
                    time.sleep(pause)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], seen
    finally:
        done.set()
        thread.join(5)
        listener.close()


def test_the_answers_status_is_returned_and_the_token_goes_only_in_a_header() -> None:
    with answering(OK) as (port, seen):
        assert probe("127.0.0.1", port, "the-token", "/user/alice/") == 200
        assert probe("127.0.0.1", port, None) == 200
    first, second = seen
    assert first.startswith(b"GET /user/alice/api/status HTTP/1.1\r\n")
    assert b"\r\nAuthorization: token the-token\r\n" in first
    assert second.startswith(b"GET /api/status ") and b"Authorization" not in second


def test_an_answer_that_is_not_http_has_no_status() -> None:
    with answering(b"SSH-2.0-OpenSSH_9.2\r\n") as (port, _):
        assert probe("127.0.0.1", port, None) is None


def test_an_answer_sent_a_byte_at_a_time_is_given_up_at_the_deadline() -> None:
    with answering(OK, pause=0.2) as (port, _):
        began = time.monotonic()
        assert probe("127.0.0.1", port, None, timeout=0.5) is None
        # One deadline for the whole answer, not one per read (which a trickle would renew forever).
        assert time.monotonic() - began < 3.0


def test_nothing_listening_is_no_status() -> None:
    assert probe("127.0.0.1", free_port(), "the-token", timeout=1.0) is None


def test_a_whole_exchange_is_the_head_up_to_the_blank_line() -> None:
    with answering(OK + b"a body that is not read") as (port, _):
        head = exchange("127.0.0.1", port, "/api", None)
    assert head is not None and head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Server: test" in head


def test_accepting_is_told_without_sending_anything_and_a_refused_port_is_not() -> None:
    with answering(OK) as (port, seen):
        assert accepts("127.0.0.1", port, timeout=1.0)
    assert seen in ([], [b""]), "nothing was sent: the token goes only where the listener is known"
    assert not accepts("127.0.0.1", free_port(), timeout=1.0)


def test_a_listener_that_never_accepts_does_not_hold_a_poll() -> None:
    """Another account's listener with its backlog full: the kernel drops the SYN and a connect would wait. The
    verifying loop polls through accepts() and must get on to noticing its own server died (port_in_use)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        queued = [socket.socket() for _ in range(3)]
        for client in queued:
            client.setblocking(False)
            client.connect_ex(("127.0.0.1", port))
        try:
            started = time.monotonic()
            assert not accepts("127.0.0.1", port)
            assert time.monotonic() - started < REQUEST_TIMEOUT / 2
        finally:
            for client in queued:
                client.close()
