"""A real HTTP server that receives callbacks, as the platform's endpoints would."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode()))


@dataclass
class CallbackServer:
    """A real HTTP server on loopback that records every callback and answers as the test tells it to."""

    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    # path -> statuses to answer in turn (the last one repeats); "hang" answers nothing for a long time.
    script: dict[str, list[int | str]] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)  # path -> headers sent with every answer
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    def forms(self, path: str | None = None) -> list[dict[str, str]]:
        with self.lock:
            return [r.form for r in self.received if path is None or r.path == path]

    def wait_for(self, count: int, path: str | None = None, timeout: float = 10.0) -> list[dict[str, str]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.forms(path)) < count:
            time.sleep(0.02)
        return self.forms(path)

    def next_answer(self, path: str) -> int | str:
        with self.lock:
            answers = self.script.get(path, [200])
            return answers.pop(0) if len(answers) > 1 else answers[0]


def _handler(owner: list[CallbackServer]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            cb = owner[0]
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with cb.lock:
                cb.received.append(Received(self.path, dict(self.headers.items()), body, time.monotonic()))
            answer = cb.next_answer(self.path)
            if answer == "hang":
                time.sleep(30)
                return
            assert isinstance(answer, int)
            self.send_response(answer)
            for name, value in cb.headers.get(self.path, {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def statuses(callbacks: CallbackServer, path: str) -> list[str]:
    """The callbacks `path` received, as status or status/reason."""
    return [form["status"] + (f"/{form['reason']}" if "reason" in form else "") for form in callbacks.forms(path)]


def urls(callbacks: CallbackServer) -> list[str]:
    """The START and COMPLETE options pointing at `callbacks`."""
    return ["--start-url", callbacks.url("/start"), "--complete-url", callbacks.url("/complete")]


@contextlib.contextmanager
def serving(port: int = 0) -> Iterator[CallbackServer]:
    owner: list[CallbackServer] = []
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(owner))
    server.daemon_threads = True
    owner.append(CallbackServer(server))
    # shutdown() waits for serve_forever's next poll: at the default 0.5 s, every test using a receiver paid it.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield owner[0]
    finally:
        server.shutdown()
        server.server_close()
