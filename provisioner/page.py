"""The progress page (--progress-page): while a run provisions, the server's own port answers every request with a
small page saying where the run is, instead of refusing the connection a researcher who opened the address early
would otherwise get.

- Status 503 with Retry-After, so that no probe and no proxy takes it for the server.
- The states so far with their times, the current one ticking, and on failure the reason and message. Nothing else:
  never the address asked for (it holds the token), never a header of the request. Every text is escaped, and
  messages go through the token's redactor.
- The port is released just before the server starts. The page's script polls the address the browser opened (token
  and all) through the gap, and loads it again once something other than this page answers: Jupyter. Without
  JavaScript a meta refresh reloads it.
- With TLS the page is served with the server's certificate, so that the address is https from the first moment.
- After a failure the page stays a moment (LINGER) so that an open tab polls it at least twice.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import html
import http.server
import json
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from provisioner import netinfo
from provisioner.tls import Certificate, TLSError

MARK = "X-Provisioner-Progress"  # on every answer of the page: what the script tells apart from Jupyter's
POLL = 1.0  # seconds between the script's polls
REFRESH = 3  # seconds between the meta refresh's reloads, without JavaScript
LINGER = 2.5 * POLL  # seconds a failure stays shown after the run ended: two polls of an open tab see it
CONNECTION_TIMEOUT = 10.0  # seconds a connection may take to send its request: a slow client holds no thread long
MAX_CONNECTIONS = 32  # connections served at once; more are closed unanswered
SHUTDOWN_POLL = 0.02  # seconds


@dataclass
class _Step:
    state: str
    at: float  # seconds since the run began


@dataclass
class Progress:
    """What the page shows, changed by the run and read by the page's threads (under `lock`)."""

    steps: list[_Step] = field(default_factory=list)
    failure: tuple[str, str] | None = None  # reason, message (redacted)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def snapshot(self, elapsed: float) -> dict[str, Any]:
        with self.lock:
            steps = [{"state": step.state, "at": round(step.at, 2)} for step in self.steps]
            failure = self.failure
        return {
            "steps": steps,
            "elapsed": round(elapsed, 2),
            "failure": {"reason": failure[0], "message": failure[1]} if failure else None,
        }


SCRIPT = """
"use strict";
const shown = JSON.parse(document.getElementById("progress").textContent);
let base = shown, since = performance.now();
const clock = (s) => s < 60 ? s.toFixed(1) + " s" : Math.floor(s / 60) + " min " + Math.floor(s % 60) + " s";
function draw() {
  const now = base.elapsed + (performance.now() - since) / 1000;
  const rows = document.getElementById("steps");
  rows.replaceChildren();
  base.steps.forEach((step, i) => {
    const last = i === base.steps.length - 1, row = document.createElement("li");
    const end = last ? (base.failure ? step.at : now) : base.steps[i + 1].at;
    row.textContent = step.state + " \\u2014 " + clock(Math.max(0, end - step.at));
    if (last && !base.failure) row.className = "current";
    rows.append(row);
  });
  const failure = document.getElementById("failure");
  failure.hidden = !base.failure;
  if (base.failure) failure.textContent = "Failed (" + base.failure.reason + "): " + base.failure.message;
}
async function poll() {
  try {
    const answer = await fetch(location.href, {cache: "no-store", headers: {Accept: "application/json"}});
    if (!answer.headers.has("__MARK__")) { location.reload(); return; }
    base = await answer.json(); since = performance.now();
    document.getElementById("gap").hidden = true;
  } catch (e) {
    // Nothing listens for a moment: the page let go of the port and Jupyter is starting; or, after a failure, the
    // run is over (a run started again would serve the page again, and Jupyter after it: keep asking, less often).
    document.getElementById("gap").hidden = Boolean(base.failure);
  }
  setTimeout(poll, base.failure ? 5 * __POLL__ : __POLL__);
}
setInterval(draw, 100);
draw();
setTimeout(poll, __POLL__);
""".replace("__MARK__", MARK).replace("__POLL__", str(int(POLL * 1000)))

# Only this script may run: a message that got past the escaping could not add one.
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
HEADERS = {
    "Retry-After": str(int(POLL) or 1),
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the address holds the token
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        f"default-src 'none'; script-src 'sha256-{_SCRIPT_HASH}'; style-src 'unsafe-inline'; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    MARK: "1",
}

STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 40em; margin: 3em auto; padding: 0 1em; color: #222 }
ol { padding-left: 1.2em } li.current { font-weight: bold } li.current::after { content: " \\2026" }
#failure { color: #a00; font-weight: bold } #gap { color: #555 }
"""


def render(snapshot: dict[str, Any]) -> str:
    """The page: readable as it is (no script needed), kept current by its script."""
    steps = snapshot["steps"]
    rows = []
    for i, step in enumerate(steps):
        end = steps[i + 1]["at"] if i + 1 < len(steps) else snapshot["elapsed"]
        current = i + 1 == len(steps) and snapshot["failure"] is None
        mark = " class=current" if current else ""
        rows.append(f"<li{mark}>{html.escape(step['state'])} \u2014 {end - step['at']:.1f} s</li>")
    failure = snapshot["failure"]
    failed = (
        f"Failed ({html.escape(failure['reason'])}): {html.escape(failure['message'])}" if failure is not None else ""
    )
    title = "Jupyter could not be started" if failure else "Jupyter is being set up"
    # The data for the script, in a block no browser runs; "<" escaped so that no text can close the block.
    data = json.dumps(snapshot).replace("<", "\\u003c")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<noscript><meta http-equiv="refresh" content="{REFRESH}"></noscript>
<title>{title}</title><style>{STYLE}</style></head>
<body><h1>{title}</h1>
<p>This address becomes your Jupyter server when it is ready; this page then loads it by itself.</p>
<ol id="steps">{"".join(rows)}</ol>
<p id="failure"{"" if failure else " hidden"}>{failed}</p>
<p id="gap" hidden>Jupyter is starting\u2026</p>
<script type="application/json" id="progress">{data}</script>
<script>{SCRIPT}</script>
</body></html>
"""


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    timeout = CONNECTION_TIMEOUT

    def version_string(self) -> str:
        return "provisioner"  # not Python's version: nothing for a scanner

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        snapshot = self.server.snapshot()
        if "application/json" in self.headers.get("Accept", ""):
            content, kind = json.dumps(snapshot), "application/json"
        else:
            content, kind = render(snapshot), "text/html; charset=utf-8"
        payload = content.encode()
        self.send_response(503)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Nothing is logged: a request line holds the token."""

    def log_error(self, format: str, *args: Any) -> None:
        """Nor its errors, which quote the request line."""


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True  # a connection in progress never keeps the run from ending
    block_on_close = False

    def __init__(self, sock: socket.socket, context: ssl.SSLContext | None, snapshot: Callable[[], dict[str, Any]]):
        super().__init__(sock.getsockname()[:2], _Handler, bind_and_activate=False)
        self.socket.close()  # the one socketserver made: ours is bound already, the way Jupyter binds
        self.socket = sock
        self.tls = context
        self.snapshot = snapshot
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

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
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        # The handshake happens here, in the connection's own thread: a slow client holds up no other.
        with self.tls.wrap_socket(request, server_side=True) as wrapped:
            super().finish_request(wrapped, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away or spoke no TLS: nothing to tell anyone."""


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
    ) -> None:
        self.ip, self.port = ip, port
        self.certificate = certificate
        # Called once the port is ours, so that a run that cannot show the page makes no certificate for it.
        self._make_certificate = make_certificate
        self.started = started
        self.redact = redact
        self.progress = Progress()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._failed: bool = False
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
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            try:
                context.load_cert_chain(self.certificate.certfile, self.certificate.keyfile, password=lambda: b"")
            except (OSError, ssl.SSLError) as exc:
                sock.close()
                return f"cannot use the certificate: {getattr(exc, 'strerror', None) or exc}"
        self._server = _Server(sock, context, self._snapshot)
        # It checks for close() every SHUTDOWN_POLL seconds: what letting go of the port adds to the server's start.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(SHUTDOWN_POLL,), name="progress-page")
        self._thread.daemon = True
        self._thread.start()
        return None

    def enter(self, state: str, reason: str | None = None, message: str | None = None) -> None:
        """The run entered `state`; with a reason, it failed and `message` says why."""
        elapsed = time.monotonic() - self.started
        with self.progress.lock:
            self.progress.steps.append(_Step(state, elapsed))
            if reason is not None:
                self.progress.failure = (reason, self.redact(message or ""))
                self._failed = True
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
        if self._failed and not self.open and self.start() is None:
            self._shown_since = time.monotonic()

    def linger(self) -> None:
        """After a failure: go on showing it until it was shown LINGER seconds in all, then close."""
        if self._failed and self.open and self._shown_since is not None:
            time.sleep(max(0.0, LINGER - (time.monotonic() - self._shown_since)))
        self.close()

    def _snapshot(self) -> dict[str, Any]:
        return self.progress.snapshot(time.monotonic() - self.started)


def _listen(ip: str, port: int) -> socket.socket:
    """A listening socket bound as Jupyter (Tornado) binds: SO_REUSEADDR, and an IPv6 address for IPv6 alone."""
    family = netinfo.family(ip)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((ip, port))
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    return sock
