"""A real browser for the tests: Debian's chromium, headless, driven over the DevTools protocol (one tab).

The tab is driven in real time, not with --virtual-time-budget: the page under test polls a server that comes up
seconds later, and virtual time would run the page's timers out long before. A page drawn by script (Notebook 7) is
waited for by what it draws.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import websocket

CHROMIUM = "chromium"
# As root (the tests are) chromium runs only without its sandbox; no GPU and no first-run chatter in a container;
# none of its own traffic to Google's hosts, which a closed network (CI's) refuses or leaves hanging.
FLAGS = (
    *("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--window-size=1000,700"),
    *("--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic"),
)


def chromium() -> str:
    found = shutil.which(CHROMIUM)
    if found is None:
        pytest.fail("Debian's chromium is not installed; scripts/install-test-prerequisites.sh installs it")
    return found


class Tab:
    """One tab of a headless chromium, and the commands the tests send it."""

    def __init__(self, profile: Path, *flags: str) -> None:
        self.process = subprocess.Popen(
            [chromium(), *FLAGS, *flags, "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port = self._devtools_port(profile / "DevToolsActivePort")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
                targets = json.load(answer)
            page = next(target for target in targets if target["type"] == "page")
            self.socket = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30)
        except BaseException:
            self.close()
            raise
        self._next = 0
        self.send("Page.enable")

    def _devtools_port(self, path: Path) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"chromium exited with {self.process.returncode}")
            text = path.read_text() if path.exists() else ""
            if text.strip():
                return int(text.split()[0])
            time.sleep(0.05)
        pytest.fail("chromium did not open its DevTools port in 30 s")

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        self.socket.send(json.dumps({"id": self._next, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self._next:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the tab (DevTools runs it even where the page's scripts are off)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float) -> Any:
        """The first truthy value of `expression`, polled; fails the test after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except RuntimeError:  # the tab is between documents
                value = None
            if value:
                return value
            time.sleep(0.1)
        pytest.fail(f"after {timeout} s the tab still has no {expression!r}; it shows {self.evaluate('location.href')}")

    def screenshot(self, path: Path) -> bytes:
        data = base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])
        path.write_bytes(data)
        return data

    def close(self) -> None:
        sock = getattr(self, "socket", None)
        if sock is not None:
            sock.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
