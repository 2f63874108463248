"""The progress page (--progress-page): while a run provisions, the server's own port answers every request with a
small page saying where the run is, instead of refusing the connection a researcher who opened the address early
would otherwise get.

- Status 503 with Retry-After, so that no probe and no proxy takes it for the server.
- The states so far with their times, the current one ticking, and on failure the reason and message. Nothing else:
  never the address asked for (it holds the token), never a header of the request. Every text is escaped, and
  messages go through the token's redactor.
- The port is released just before the server starts. The page's script polls through the gap *without* the token
  (and without cookies), and loads the address the browser opened only once an answer carries the run's proof
  (provisioner.proof), which the page gives only to a tab that opened it with the token: another account that binds
  the port in the gap, or after a failure, is never sent the token. An answer without the proof is not followed; the
  tab asks for a reload by hand. Without JavaScript nothing reloads by itself: the page says to reload by hand.
- After a failure the tab stops polling: the run is over.
- With TLS the page is served with the server's certificate, so that the address is https from the first moment.
- After a failure the page stays a moment (LINGER) so that an open tab polls it at least twice.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from provisioner import netinfo, proof, tls
from provisioner.output import bounded
from provisioner.pageview import POLL, Progress, Step, Tab, answer
from provisioner.tls import Certificate, TLSError

LINGER = 2.5 * POLL  # seconds a failure stays shown after the run ended: two polls of an open tab see it


CONNECTION_TIMEOUT = 5.0  # seconds a connection may wait for each of its reads


CONNECTION_DEADLINE = 10.0  # seconds a connection may take in all: a client trickling bytes holds no thread longer


MAX_CONNECTIONS = 32  # connections served at once; more are closed unanswered


MAX_REQUEST = 8192  # bytes of a request's head that are read: the page needs none of it but `Accept`


DRAIN_WAIT, DRAIN_LIMIT = 1.0, 1 << 20  # what is read and dropped of a request past its head before closing


SHUTDOWN_POLL = 0.02  # seconds


class _Handler(socketserver.BaseRequestHandler):
    """Reads the request's head (at most MAX_REQUEST bytes, within the connection's deadline) and answers."""

    server: _Server

    def handle(self) -> None:
        connection: socket.socket = self.request
        head = b""
        while b"\r\n\r\n" not in head and b"\n\n" not in head and len(head) < MAX_REQUEST:
            chunk = connection.recv(MAX_REQUEST - len(head))
            if not chunk:
                break
            head += chunk
        if not head:
            return
        connection.sendall(answer(head, self.server.snapshot(), self.server.tab))
        if not isinstance(connection, ssl.SSLSocket):
            socket.socket.shutdown(connection, socket.SHUT_WR)  # the answer is whole: a client reading to the end stops
        # What is left of a long request is read and dropped before closing: closed with it unread, the connection
        # would be reset, and the client could lose the answer it has not read yet.
        drained = 0
        connection.settimeout(DRAIN_WAIT)
        with contextlib.suppress(OSError):
            while drained < DRAIN_LIMIT and (chunk := connection.recv(65536)):
                drained += len(chunk)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True  # a connection in progress never keeps the run from ending
    block_on_close = False

    def __init__(
        self, sock: socket.socket, context: ssl.SSLContext | None, snapshot: Callable[[], dict[str, Any]], tab: Tab
    ):
        super().__init__(sock.getsockname()[:2], _Handler, bind_and_activate=False)
        self.socket.close()  # the one socketserver made: ours is bound already, the way Jupyter binds
        self.socket = sock
        self.tls = context
        self.snapshot = snapshot
        self.tab = tab
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._accepted: dict[socket.socket, float] = {}  # each connection in progress, and when it was accepted
        self._lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(CONNECTION_TIMEOUT)
        connection = request
        if self.tls is not None:
            # The handshake happens here, in the connection's own thread, under its deadline.
            connection = self.tls.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        with self._lock:
            self._accepted[connection] = time.monotonic()
        try:
            if self.tls is not None:
                connection.do_handshake()
            super().finish_request(connection, client_address)
        finally:
            with self._lock:
                del self._accepted[connection]
            connection.close()

    def service_actions(self) -> None:
        """Between polls for connections: cut off every connection past its deadline, however it trickles."""
        now = time.monotonic()
        with self._lock:
            late = [connection for connection, at in self._accepted.items() if now - at > CONNECTION_DEADLINE]
        for connection in late:
            with contextlib.suppress(OSError):
                # The descriptor's own shutdown: the thread in recv() wakes to an end of file (a TLS socket's
                # shutdown() would also unwrap it under that thread's feet).
                socket.socket.shutdown(connection, socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away, trickled past its deadline or spoke no TLS: nothing to tell anyone."""


class ProgressPage:
    """The page on (ip, port) from open() until close(), showing the run's progress as `enter()` reports it."""

    def __init__(
        self,
        ip: str,
        port: int,
        certificate: Certificate | None,
        started: float,
        redact: Callable[[str], str],
        *,
        make_certificate: Callable[[], Certificate | None] | None = None,
        tab: Tab | None = None,
    ) -> None:
        self.ip, self.port = ip, port
        # Without one, no tab is ever given a proof: it never loads the address by itself.
        self.tab = tab or Tab("/api", None, proof.draw())
        self.certificate = certificate
        # Called once the port is ours, so that a run that cannot show the page makes no certificate for it.
        self._make_certificate = make_certificate
        self.started = started
        self.redact = redact
        self.progress = Progress()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._shown_since: float | None = None  # since when the page shows the failure

    @property
    def open(self) -> bool:
        return self._server is not None

    def holds(self, ip: str, port: int) -> bool:
        """Whether the page is what holds (ip, port) now: the port check counts the port as ours, not in use."""
        return self._server is not None and (ip, port) == (self.ip, self.port)

    def start(self) -> str | None:
        """Serve the page; None when it is served, else why not (the run goes on without it)."""
        try:
            sock = _listen(self.ip, self.port)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {self.port} is in use"
            return exc.strerror or str(exc)
        if self._make_certificate is not None:
            make, self._make_certificate = self._make_certificate, None
            try:
                self.certificate = make()
            except TLSError as exc:
                sock.close()
                return str(exc)
        context = None
        if self.certificate is not None:
            try:
                context = tls.server_context(self.certificate)  # (again, after a failure: the files may have changed)
            except TLSError as exc:
                sock.close()
                return str(exc)
        self._server = _Server(sock, context, self._snapshot, self.tab)
        # It checks for close() every SHUTDOWN_POLL seconds: what letting go of the port adds to the server's start.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(SHUTDOWN_POLL,), name="progress-page")
        self._thread.daemon = True
        self._thread.start()
        return None

    def enter(self, state: str, reason: str | None = None, message: str | None = None) -> None:
        """The run entered `state`; with a reason, it failed and `message` says why."""
        elapsed = time.monotonic() - self.started
        with self.progress.lock:
            self.progress.steps.append(Step(state, elapsed))
            if reason is not None:
                self.progress.failure = (reason, bounded(self.redact(message or "")))
                self._shown_since = time.monotonic() if self.open else None

    def close(self) -> None:
        """Let go of the port (just before the server starts, and at the end of the run)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        server.shutdown()
        thread.join()
        server.server_close()

    def show_failure(self) -> None:
        """After a failure the page had let go of the port for (the server started, then failed and was stopped):
        serve it again, if the port is free, while the run ends."""
        if self.progress.failure is not None and not self.open and self.start() is None:
            self._shown_since = time.monotonic()

    def linger(self) -> None:
        """After a failure: go on showing it until it was shown LINGER seconds in all, then close."""
        if self.open and self._shown_since is not None:  # set only once a failure is shown
            time.sleep(max(0.0, LINGER - (time.monotonic() - self._shown_since)))
        self.close()

    def _snapshot(self) -> dict[str, Any]:
        return self.progress.snapshot(time.monotonic() - self.started)


def _listen(ip: str, port: int) -> socket.socket:
    """The port, held the way Jupyter will hold it (netinfo.bound)."""
    sock = netinfo.bound(ip, port)
    try:
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    return sock
