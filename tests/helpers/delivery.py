"""What the delivery and reporter tests share: a clock that does not wait, a quick policy, a body and its lanes."""

from __future__ import annotations

import threading
import time
from urllib.parse import urlencode

from provisioner.definition import CallbackPolicy
from provisioner.delivery import (
    Body,
    Clock,
    Lanes,
)
from provisioner.record import Callback, Delivery


class FakeClock(Clock):
    """Real time plus every sleep, and a sleep that returns at once: a backoff counts against the deadline as it
    would, without being waited out. A held clock's sleep returns only once `go` is set."""

    def __init__(self, *, held: bool = False) -> None:
        self.slept: list[float] = []
        self.go = threading.Event()
        if not held:
            self.go.set()
        self._lock = threading.Lock()
        self._ahead = 0.0

    def monotonic(self) -> float:
        with self._lock:
            return time.monotonic() + self._ahead

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self._ahead += seconds
        self.go.wait()


QUICK = CallbackPolicy(timeout=1.0, attempts=4, deadline=3.0)


def form(callback: Callback) -> Body:
    return urlencode(callback.fields).encode(), {"Content-Type": "application/x-www-form-urlencoded"}


def put(lanes: Lanes, url: str, status: str) -> Callback:
    callback = Callback("complete", {"status": status})
    lanes.put(url, callback)
    return callback


def released(policy: CallbackPolicy = QUICK, clock: Clock | None = None) -> Lanes:
    lanes = Lanes(policy, form, settle, redact=lambda text: text, clock=clock or FakeClock())
    lanes.released.set()
    return lanes


def settle(url: str, callback: Callback, delivered: bool) -> None:
    callback.delivery = Delivery.DELIVERED if delivered else Delivery.UNDELIVERED
    callback.done.set()


def no_secrets(text: str) -> str:
    return text.replace("s3cret", "***")
