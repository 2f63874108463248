"""Callbacks to the platform: form POSTs, retried with tenacity, delivered in order off the main path.

The machine hands the reporter one message per callback and goes on; each lane (the spec's start/complete
callbacks, and --progress-url) has a thread that delivers its messages in the order they were sent. A callback that
cannot be delivered is logged and recorded, and never changes the outcome of the run.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urljoin, urlsplit

from provisioner import __version__
from provisioner.context import log
from provisioner.definition import CallbackPolicy
from provisioner.output import bounded
from provisioner.record import Callback, Delivery, mask_url

if TYPE_CHECKING:
    import requests

    from provisioner.signing import Signer

USER_AGENT = f"jupyter-init/{__version__}"
PROGRESS = "progress"  # the --progress-url endpoint; its callbacks travel in a lane of their own
SIGNATURE_HEADER = "X-Jupyter-Init-Signature"
FORM = "application/x-www-form-urlencoded"
RETRY_AFTER_CAP = 10.0  # seconds: an endpoint may slow us down, not hold us past reason
MAX_REDIRECTS = 5  # 307/308 hops followed per attempt


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


def _import_delivery_modules() -> None:
    import requests  # noqa: F401
    import tenacity  # noqa: F401


# The fields whose every value is ours: a status, reason or state of the definition, numbers, a fingerprint, a boot.
OUR_FIELDS = frozenset({"status", "reason", "state", "port", "pid", "fingerprint", "boot", "boot_id"})


class _Transient(Exception):
    """A failed attempt worth another try: 5xx, a timeout, a refused connection."""


class Reporter:
    """Sends callbacks, one thread per endpoint URL delivering its callbacks in order, under the retry policy.

    Callbacks arrive in the order they were queued, within one URL and across URLs: a callback waits until every
    earlier one is delivered or has failed an attempt. Each endpoint has its own lane so that a failing or hanging
    one holds the others back for one attempt at most (its timeout, if it hangs): then the later callback goes, and
    the earlier one is retried, delivered late or not, and recorded as it went.
    """

    def __init__(
        self,
        policy: CallbackPolicy,
        redact: Callable[[str], str],
        *,
        signer: Signer | None = None,
        on_queue: Callable[[Callback], None] = lambda callback: None,
        on_done: Callable[[], object] | None = None,
        seen: Callable[[Callback], bool] = lambda callback: False,
        warm: bool = False,
    ) -> None:
        self.policy = policy
        self.redact = redact
        self.signer = signer  # signs every callback's body (provisioner.signing): the token or the platform's key
        self.on_queue = on_queue  # records a new callback, pending, before anything is tried
        self.on_done = on_done
        # Whether the record already holds this platform callback (same endpoint and fields): never sent twice.
        self.seen = seen
        self.callbacks: list[Callback] = []  # what this process queued (new ones and ones an earlier run left)
        self._queues: dict[str, queue.Queue[tuple[str, Callback, tuple[Callback, ...]] | None]] = {}
        # Settles each callback: a lane thread ending it and close() giving up on it never overwrite one another.
        self._settle = threading.Lock()
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

    def send(self, endpoint: str, url: str, fields: Mapping[str, str]) -> Callback | None:
        """Queue a new callback, recorded pending at once; None when the record already has it (sent once only)."""
        # Our own fields are sent as they are, never rewritten by a short token that happens to equal one (`ready`);
        # every other field may quote what others wrote (a tool's error, the server's log) and is redacted.
        callback = Callback(
            endpoint,
            {name: value if name in OUR_FIELDS else bounded(self.redact(value)) for name, value in fields.items()},
        )
        if endpoint != PROGRESS and self.seen(callback):
            log.info("%s callback (%s) is already recorded; not sending it again", endpoint, callback.status)
            return None
        self.on_queue(callback)
        self.resend(callback, url)
        return callback

    def resend(self, callback: Callback, url: str) -> None:
        """Queue a recorded callback that is not delivered yet; its record entry is updated as it goes."""
        callback.done.clear()
        callback.passed.clear()
        earlier = tuple(self.callbacks)  # what must be settled before this one goes (see _wait_for)
        self.callbacks.append(callback)
        self._lane(url).put((url, callback, earlier))

    def release_after(self, seconds: float) -> None:
        """Release deliveries in `seconds` if nothing has by then: a module load that takes minutes (a cold EESSI
        stack) must not keep `init_started` from the platform, while a run that starts its server sooner than that
        still starts it before the imports."""
        timer = threading.Timer(seconds, self.release)
        timer.daemon = True
        timer.start()

    def close(self, timeout: float) -> list[Callback]:
        """Wait up to `timeout` seconds for every queued callback; what is left is recorded as not delivered."""
        self.release()
        for lane in self._queues.values():
            lane.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._settle:
            for callback in self.callbacks:
                if not callback.done.is_set():
                    callback.delivery = Delivery.UNDELIVERED
                    callback.error = callback.error or "not delivered before the callback deadline"
        return self.callbacks

    def _body(self, callback: Callback) -> tuple[bytes, dict[str, str]]:
        """The exact bytes sent, with a fresh timestamp, and the signature over them."""
        fields = {**callback.fields, "timestamp": str(int(time.time()))}
        body = urlencode(fields).encode()
        headers = {"Content-Type": FORM}
        if self.signer is not None:
            try:
                headers[SIGNATURE_HEADER] = self.signer(body)
            except OSError as exc:  # root would not vouch for it (provisioner.signing): sent unsigned, never
                raise _Unsigned(f"not signed: {exc}") from None
        return body, headers

    def _lane(self, url: str) -> queue.Queue[tuple[str, Callback, tuple[Callback, ...]] | None]:
        if url not in self._queues:
            lane: queue.Queue[tuple[str, Callback, tuple[Callback, ...]] | None] = queue.Queue()
            # Daemon: a hung endpoint must not keep the process alive past close()'s deadline.
            name = f"callbacks-{len(self._queues)}"
            thread = threading.Thread(target=self._work, args=(lane,), name=name, daemon=True)
            self._queues[url] = lane
            self._threads.append(thread)
            thread.start()
        return self._queues[url]

    def _work(self, lane: queue.Queue[tuple[str, Callback, tuple[Callback, ...]] | None]) -> None:
        self._released.wait()
        import requests  # here, not at import time: it costs ~120 ms and the main path never needs it

        with requests.Session() as session:
            session.headers["User-Agent"] = USER_AGENT
            while (item := lane.get()) is not None:
                url, callback, earlier = item
                self._wait_for(earlier)
                delivered = False
                try:
                    delivered = self._deliver(session, url, callback)
                except Exception as exc:
                    callback.error = self.redact(f"{type(exc).__name__}: {exc}")
                with self._settle:  # after close() gave up on it, what really happened still wins
                    callback.delivery = Delivery.DELIVERED if delivered else Delivery.UNDELIVERED
                    callback.done.set()
                    callback.passed.set()
                if self.on_done is not None:
                    self.on_done()
                if not callback.delivered:
                    log.warning(
                        "warning: %s callback (%s) to %s not delivered after %d attempt(s): %s",
                        callback.endpoint,
                        callback.status,
                        _where(url),
                        callback.attempts,
                        callback.error,
                    )

    def _wait_for(self, earlier: tuple[Callback, ...]) -> None:
        """Until every earlier callback is delivered or has failed an attempt, or one attempt's timeout has passed: a
        platform never hears a later step before an earlier one, unless the earlier one's endpoint failed or hangs."""
        bound = time.monotonic() + self.policy.timeout
        for callback in earlier:
            if not callback.passed.wait(max(0.0, bound - time.monotonic())):
                return

    def _deliver(self, session: requests.Session, url: str, callback: Callback) -> bool:
        """Try to deliver `callback` under the policy; whether an answer was a 2xx."""
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
        asked: list[float | None] = [None]  # Retry-After of the last answer, for the wait before the next try
        answered: list[bool] = [False]  # a 2xx came

        def post(target: str) -> requests.Response:
            # Each try gets what is left of the deadline at most, so that the deadline holds.
            remaining = max(0.1, min(policy.timeout, deadline - time.monotonic()))
            body, headers = self._body(callback)
            callback.url = mask_url(target)
            return session.post(target, data=body, headers=headers, timeout=remaining, allow_redirects=False)

        def attempt() -> None:
            callback.attempts += 1
            try:
                tried()
            finally:
                if not answered[0]:  # failed: later callbacks need not wait for its retries
                    callback.passed.set()

        def tried() -> None:
            try:
                response, target = _follow(post, url)
            except _Unsigned as exc:  # root may vouch for it at the next try (a server slow to answer root's probe)
                callback.error = exc.message
                raise _Transient from None
            except _NotSent as exc:
                callback.error = exc.message
                return
            except (requests.ConnectionError, requests.Timeout) as exc:
                callback.error = self.redact(type(exc).__name__)
                raise _Transient from None
            callback.http_status = status = response.status_code
            if status >= 500 or status == 429:
                callback.error = f"HTTP {status}"
                asked[0] = retry_after(response.headers.get("Retry-After"))
                raise _Transient
            if 300 <= status < 400:
                # 301/302/303 would turn the POST into a GET and drop the body: not a delivery. The operator
                # fixes the URL; resume sends it again.
                moved = mask_url(urljoin(target, response.headers.get("Location", ""))) or "nowhere"
                callback.error = f"HTTP {status}: the endpoint moved to {moved}; not followed (fix the URL)"
                return
            if status >= 400 or status < 200:
                callback.error = f"HTTP {status} (not retried)"
                return
            answered[0] = True
            callback.error = None

        # 0.2 s doubling up to 5 s, plus up to 0.2 s of jitter; built from waits every tenacity since 8.3 has (9.2's
        # wait_exponential_jitter(multiplier=...) is not on Python 3.9, whose last tenacity is 9.1).
        backoff = wait_exponential(multiplier=0.2, max=5.0) + wait_random(0, 0.2)

        def wait(state: RetryCallState) -> float:
            """Exponential backoff with jitter, or longer when the endpoint asked for it with Retry-After."""
            wanted, asked[0] = asked[0], None
            return max(backoff(state), wanted or 0.0)

        retrying = Retrying(
            stop=stop_after_attempt(policy.attempts) | stop_before_delay(policy.deadline),
            wait=wait,
            retry=retry_if_exception_type(_Transient),
        )
        with contextlib.suppress(RetryError):  # the last attempt's error is already recorded
            retrying(attempt)
        return answered[0]


class _NotSent(Exception):
    """An attempt that ends the callback's delivery without a try more: recorded undelivered with its message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _Unsigned(_NotSent):
    """A body the platform's key would not sign: not sent (an unsigned callback would be taken for a forgery), but
    tried again within the deadline, as root may vouch for it then."""


class _NotFollowed(_NotSent):
    """A 307/308 the reporter will not follow: to another scheme, from https to http, or one hop too many."""


def _follow(post: Callable[[str], requests.Response], url: str) -> tuple[requests.Response, str]:
    """POST to `url`, following 307 and 308 (which keep the method and the body) up to MAX_REDIRECTS hops.

    Returns the last answer and the URL that gave it. Only within the URL's own origin (scheme, host and port): the
    signed body is for the platform the operator named, not for wherever an endpoint points it."""
    target = url
    for _ in range(MAX_REDIRECTS + 1):
        response = post(target)
        if response.status_code not in (307, 308):
            return response, target
        location = urljoin(target, response.headers.get("Location", ""))
        if location == target or _origin(url) is None or _origin(location) != _origin(url):
            raise _NotFollowed(
                f"HTTP {response.status_code} to {mask_url(location) or 'nowhere'}, outside {_where(url)}: not "
                "followed (fix the URL)"
            )
        target = location
    raise _NotFollowed(f"more than {MAX_REDIRECTS} redirects from {mask_url(url)}")


def _origin(url: str) -> tuple[str, str, int | None] | None:
    """A URL's origin, its default port spelled out; None for one that is not http(s) or has no host."""
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port


def _where(url: str) -> str:
    """The endpoint's host and port for a log line: never its user information."""
    try:
        parts = urlsplit(url)
        return f"{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return "?"
