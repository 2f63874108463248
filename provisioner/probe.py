"""Asking a Jupyter server over HTTP(S), as the run and root's signing monitor do: a few lines over a socket, one
deadline for the whole exchange, and with TLS only to the certificate pinned."""

from __future__ import annotations

import contextlib
import socket
import time

from provisioner import netinfo, tls

REQUEST_TIMEOUT = 2.0
# A local connection is accepted or refused at once; only a listener that never accepts (another account's, its
# backlog full) lets a connect hang, and a poll loop must not wait on it longer than between two polls.
ACCEPT_TIMEOUT = 0.1


def accepts(host: str, port: int, timeout: float = ACCEPT_TIMEOUT) -> bool:
    """Whether anything accepts a TCP connection on `port` (nothing is sent). A refused connection costs the kernel next
    to nothing: finding out who listens (netinfo.listens) reads /proc/net/tcp, which walks the kernel's socket tables
    (about 7 ms of system time here), and is worth doing only once something does."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def probe(
    host: str,
    port: int,
    token: str | None,
    base_url: str = "/",
    *,
    timeout: float = REQUEST_TIMEOUT,
    pin: str | None = None,
) -> int | None:
    """GET {base_url}api/status; the HTTP status, or None when nothing answers in `timeout` seconds all told.

    With `pin` (a certificate's fingerprint), over TLS to a server that shows exactly that certificate, or not at all.
    """
    head = exchange(host, port, f"{base_url}api/status", token, timeout=timeout, pin=pin, whole=False)
    status = (head or b"").split(b"\r\n", 1)[0].split()
    return int(status[1]) if len(status) > 1 and status[0].startswith(b"HTTP/") and status[1].isdigit() else None


def exchange(
    host: str,
    port: int,
    path: str,
    token: str | None,
    *,
    timeout: float = REQUEST_TIMEOUT,
    pin: str | None = None,
    whole: bool = True,
) -> bytes | None:
    """GET `path` (percent-encoded already, once, by values.parse_base_url); the answer's head (its first line
    only unless `whole`), or None when nothing answers in `timeout` seconds all told.

    A few lines of HTTP over a socket, with one deadline for the whole exchange: http.client's timeout is per read,
    and a server that sends its answer a byte a second would hold us for days.
    """
    deadline = time.monotonic() + timeout
    # No `Connection: close`: we close first, so that no TIME_WAIT is left on the server's port when it stops.
    request = f"GET {path} HTTP/1.1\r\nHost: {netinfo.url_host(host)}:{port}\r\n"
    if token is not None:
        request += f"Authorization: token {token}\r\n"
    end, limit = (b"\r\n\r\n", 16384) if whole else (b"\r\n", 1024)
    answer = b""
    try:
        with contextlib.ExitStack() as stack:
            sock = stack.enter_context(socket.create_connection((host, port), timeout=timeout))
            if pin is not None:
                wrapped = tls.pinned(sock, host, pin, max(0.001, deadline - time.monotonic()))
                if wrapped is None:
                    return None
                sock = stack.enter_context(wrapped)
            sock.sendall((request + "\r\n").encode("ascii"))
            while end not in answer and len(answer) < limit:
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                chunk = sock.recv(limit)
                if not chunk or time.monotonic() > deadline:
                    return None
                answer += chunk
    except (OSError, UnicodeEncodeError):
        return None
    return answer
