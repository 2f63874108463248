"""Callbacks to the platform: form POSTs, retried with tenacity, delivered in order off the main path.

The machine hands the reporter one message per callback and goes on; each lane (the spec's start/complete
callbacks, and --progress-url) has a thread that delivers its messages in the order they were sent. A callback that
cannot be delivered is logged and recorded, and never changes the outcome of the run.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import queue
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from provisioner.context import log
from provisioner.definition import CallbackPolicy
from provisioner.settings import Secret

if TYPE_CHECKING:
    import requests

USER_AGENT = "provisioner (jupyter_init)"
PROGRESS = "progress"  # the --progress-url endpoint; its callbacks travel in a lane of their own
SIGNATURE_HEADER = "X-Jupyter-Init-Signature"
FORM = "application/x-www-form-urlencoded"
RETRY_AFTER_CAP = 10.0  # seconds: an endpoint may slow us down, not hold us past reason


def sign(body: bytes, key: str) -> str:
    """The signature header's value: HMAC-SHA256 of the exact body, keyed with the token."""
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), capped; None if absent or bad."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime  # rarely needed: not worth its import at start-up

        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError):
            return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


@dataclass
class Delivery:
    """One callback and what became of it."""

    endpoint: str  # start, complete or progress
    fields: dict[str, str]
    attempts: int = 0
    http_status: int | None = None
    delivered: bool = False
    error: str | None = None
    retry_after: float | None = field(default=None, repr=False, compare=False)
    done: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    def record(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "status": self.fields.get("status"),
            "reason": self.fields.get("reason"),
            "fields": self.fields,
            "attempts": self.attempts,
            "http_status": self.http_status,
            "delivered": self.delivered,
            "error": self.error,
        }


def _import_delivery_modules() -> None:
    import requests  # noqa: F401
    import tenacity  # noqa: F401


class _Transient(Exception):
    """A failed attempt worth another try: 5xx, a timeout, a refused connection."""


class Reporter:
    """Sends callbacks in order, one thread per lane, each under the definition's retry policy."""

    def __init__(
        self,
        policy: CallbackPolicy,
        redact: Callable[[str], str],
        *,
        key: Secret | None = None,
        delivered: Collection[tuple[str, str | None, str | None]] = (),
        on_done: Callable[[], None] | None = None,
        warm: bool = False,
    ) -> None:
        self.policy = policy
        self.redact = redact
        self.key = key  # signs every callback when there is a token to sign with
        # (endpoint, status, reason) of the platform's callbacks an earlier run delivered: never sent twice.
        self.delivered = set(delivered)
        self.on_done = on_done
        self.deliveries: list[Delivery] = []
        self._queues: dict[str, queue.Queue[tuple[str, Delivery] | None]] = {}
        self._threads: list[threading.Thread] = []
        # Deliveries wait for release(): importing requests and tenacity (~200 ms of CPU) in a thread would slow
        # the main thread on its way to starting the server. Queued callbacks keep their order meanwhile.
        self._released = threading.Event()
        self._warm = warm  # callbacks are expected: import what they need as soon as that slows nothing

    def release(self) -> None:
        """Start delivering: the server is started (or the run is over), so the imports no longer slow anything.

        With callbacks expected, requests and tenacity are imported now, in the background, so that a crash
        reported a second later is not held up by ~200 ms of imports.
        """
        if self._released.is_set():
            return
        self._released.set()
        if self._warm:
            threading.Thread(target=_import_delivery_modules, name="callbacks-warm-up", daemon=True).start()

    def send(self, endpoint: str, url: str, fields: Mapping[str, str]) -> Delivery | None:
        """Queue a callback; return its record, which fills in as it is delivered (None: delivered before).

        The platform's start and complete callbacks share one ordered lane; progress has its own, so that a slow
        progress endpoint never holds them up.
        """
        key = (endpoint, fields.get("status"), fields.get("reason"))
        if endpoint != PROGRESS and key in self.delivered:
            log.info("%s callback (%s) was delivered by an earlier run; not sending it again", endpoint, key[1])
            return None
        delivery = Delivery(endpoint, {name: self.redact(str(value)) for name, value in fields.items()})
        self.deliveries.append(delivery)
        self._lane(PROGRESS if endpoint == PROGRESS else "platform").put((url, delivery))
        return delivery

    def close(self, timeout: float) -> list[Delivery]:
        """Wait up to `timeout` seconds for every queued callback; what is left is recorded as not delivered."""
        self.release()
        for lane in self._queues.values():
            lane.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for delivery in self.deliveries:
            if not delivery.done.is_set() and delivery.error is None:
                delivery.error = "not delivered before the callback deadline"
        return self.deliveries

    def _body(self, delivery: Delivery) -> tuple[bytes, dict[str, str]]:
        """The exact bytes sent, with a fresh timestamp, and the signature over them."""
        fields = {**delivery.fields, "timestamp": str(int(time.time()))}
        body = urlencode(fields).encode()
        headers = {"Content-Type": FORM}
        if self.key is not None and self.key.reveal():
            headers[SIGNATURE_HEADER] = sign(body, self.key.reveal())
        return body, headers

    def _lane(self, name: str) -> queue.Queue[tuple[str, Delivery] | None]:
        if name not in self._queues:
            lane: queue.Queue[tuple[str, Delivery] | None] = queue.Queue()
            # Daemon: a hung endpoint must not keep the process alive past close()'s deadline.
            thread = threading.Thread(target=self._work, args=(lane,), name=f"callbacks-{name}", daemon=True)
            self._queues[name] = lane
            self._threads.append(thread)
            thread.start()
        return self._queues[name]

    def _work(self, lane: queue.Queue[tuple[str, Delivery] | None]) -> None:
        self._released.wait()
        import requests  # here, not at import time: it costs ~120 ms and the main path never needs it

        with requests.Session() as session:
            session.headers["User-Agent"] = USER_AGENT
            while (item := lane.get()) is not None:
                url, delivery = item
                try:
                    self._deliver(session, url, delivery)
                except Exception as exc:
                    delivery.error = self.redact(f"{type(exc).__name__}: {exc}")
                finally:
                    delivery.done.set()
                if self.on_done is not None:
                    self.on_done()
                if not delivery.delivered:
                    log.warning(
                        "warning: %s callback (%s) to %s not delivered after %d attempt(s): %s",
                        delivery.endpoint,
                        delivery.fields.get("status"),
                        urlsplit(url).netloc,
                        delivery.attempts,
                        delivery.error,
                    )

    def _deliver(self, session: requests.Session, url: str, delivery: Delivery) -> None:
        import requests
        from tenacity import (
            RetryCallState,
            RetryError,
            Retrying,
            retry_if_exception_type,
            stop_after_attempt,
            stop_before_delay,
            wait_exponential,
            wait_random,
        )

        policy = self.policy
        deadline = time.monotonic() + policy.deadline

        def attempt() -> None:
            delivery.attempts += 1
            # Each try gets what is left of the deadline at most, so that the deadline holds.
            remaining = max(0.1, min(policy.timeout, deadline - time.monotonic()))
            body, headers = self._body(delivery)
            try:
                response = session.post(url, data=body, headers=headers, timeout=remaining, allow_redirects=False)
            except (requests.ConnectionError, requests.Timeout) as exc:
                delivery.error = self.redact(type(exc).__name__)
                raise _Transient from None
            delivery.http_status = response.status_code
            if response.status_code >= 500 or response.status_code == 429:
                delivery.error = f"HTTP {response.status_code}"
                delivery.retry_after = retry_after(response.headers.get("Retry-After"))
                raise _Transient
            if response.status_code >= 400:
                delivery.error = f"HTTP {response.status_code} (not retried)"
                return
            delivery.delivered = True
            delivery.error = None

        # 0.2 s doubling up to 5 s, plus up to 0.2 s of jitter; built from waits every tenacity since 8.3 has (9.2's
        # wait_exponential_jitter(multiplier=...) is not on Python 3.9, whose last tenacity is 9.1).
        backoff = wait_exponential(multiplier=0.2, max=5.0) + wait_random(0, 0.2)

        def wait(state: RetryCallState) -> float:
            """Exponential backoff with jitter, or longer when the endpoint asked for it with Retry-After."""
            asked, delivery.retry_after = delivery.retry_after, None
            return max(backoff(state), asked or 0.0)

        retrying = Retrying(
            stop=stop_after_attempt(policy.attempts) | stop_before_delay(policy.deadline),
            wait=wait,
            retry=retry_if_exception_type(_Transient),
        )
        with contextlib.suppress(RetryError):  # the last attempt's error is already recorded
            retrying(attempt)
