"""Delivery: one callback's body to one URL, and the lanes that keep callbacks in the order they were sent.

A try is a POST with requests; tenacity tries again after a 5xx, a 429, a timeout or a refused connection, under the
policy (attempts, deadline, Retry-After), and any other answer ends it. 307 and 308 are followed within the URL's
origin; any other redirect is not a delivery. Each try is written into the callback's record entry as it ends
(attempts, HTTP status, error, where it went), so that a record saved meanwhile shows it. What a callback says, how its
body is made, and what it is recorded as in the end, are the reporter's (provisioner.reporter).

A few lines past the usual size, on purpose: the tries of one body (Attempts) and the lanes that order bodies (Lanes)
share the release gate and the clock, and what one does to a callback's record the other must see at once.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from provisioner import __version__
from provisioner.record import Callback, mask_url

if TYPE_CHECKING:
    import requests

    from provisioner.definition import CallbackPolicy

USER_AGENT = f"jupyter-init/{__version__}"
RETRY_AFTER_CAP = 10.0  # seconds: an endpoint may slow us down, not hold us past reason
MAX_REDIRECTS = 5  # 307/308 hops followed per attempt

Body = tuple[bytes, dict[str, str]]  # the exact bytes of one try, and their headers
_Item = tuple[str, Callback, tuple[Callback, ...]]  # where to, what, and what must have passed before it goes


class Clock:
    """The time delivery waits on: the real one. Tests pass one whose sleep moves time on at once."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK = Clock()


class NotSent(Exception):
    """An attempt that ends the callback's delivery without a try more: recorded undelivered with its message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unsigned(NotSent):
    """A body the platform's key would not sign, raised by the body function: not sent (an unsigned callback would
    be taken for a forgery), but tried again within the deadline, as root may vouch for it then."""


class _NotFollowed(NotSent):
    """A 307/308 that is not followed: to another scheme, from https to http, or one hop too many."""


class _Transient(Exception):
    """A failed attempt worth another try: 5xx, a timeout, a refused connection."""


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


def warm_up() -> None:
    """Import what a first try needs (requests: ~100 ms of CPU), so that the first callback is not held up by it."""
    import requests  # noqa: F401


@dataclass
class Attempts:
    """One callback's tries at one URL under the policy; `run()` says whether an answer was a 2xx."""

    session: requests.Session
    url: str
    callback: Callback
    body: Callable[[Callback], Body]
    policy: CallbackPolicy
    redact: Callable[[str], str]
    clock: Clock
    asked: float | None = None  # Retry-After of the last answer, for the wait before the next try
    answered: bool = False  # a 2xx came
    deadline: float = field(init=False)

    def __post_init__(self) -> None:
        self.deadline = self.clock.monotonic() + self.policy.deadline

    def run(self) -> bool:
        """The first try is made by hand: most callbacks are answered at once, and tenacity's import (~50 ms of CPU and
        4 MB, as it brings tornado and asyncio when they are installed, as beside Jupyter) is paid only for a retry."""
        try:
            self._attempt()
            return self.answered
        except _Transient:
            if self.policy.attempts < 2:
                return False
        # Imported before the deadline is checked for the second try, so that the import's time counts against it.
        from tenacity import RetryError, Retrying, retry_if_exception_type

        first_wait = self._pause(1)
        if self._over(1, first_wait):
            return False
        self.callback.passed.set()  # failed, to be tried again: later callbacks need not wait for its retries
        self.clock.sleep(first_wait)
        # Tries 2 to `attempts`: tenacity counts its own from 1, one behind ours.
        retrying = Retrying(
            stop=lambda state: self._over(state.attempt_number + 1, state.upcoming_sleep),
            wait=lambda state: self._pause(state.attempt_number + 1),
            retry=retry_if_exception_type(_Transient),
            sleep=self.clock.sleep,
        )
        with contextlib.suppress(RetryError):  # the last attempt's error is already recorded
            retrying(self._attempt)
        return self.answered

    def _over(self, tries: int, upcoming_sleep: float) -> bool:
        """After the last try, or when the next would start past the deadline (stop_before_delay, on our clock)."""
        return tries >= self.policy.attempts or self.clock.monotonic() + upcoming_sleep >= self.deadline

    def _pause(self, tries: int) -> float:
        """The wait after `tries` tries: 0.2 s doubling up to 5 s, plus up to 0.2 s of jitter, as tenacity's
        wait_exponential(multiplier=0.2, max=5) + wait_random(0, 0.2); longer when the endpoint asked for it with
        Retry-After."""
        import random  # only a retry waits (~1 ms of import, unless something imported it already)

        backoff = min(0.2 * 2.0 ** (tries - 1), 5.0) + random.uniform(0, 0.2)  # noqa: S311 (jitter, not a secret)
        wanted, self.asked = self.asked, None
        return max(backoff, wanted or 0.0)

    def _attempt(self) -> None:
        import requests

        callback = self.callback
        callback.attempts += 1
        try:
            response, target = _follow(self._post, self.url)
        except Unsigned as exc:  # root may vouch for it at the next try (a server slow to answer root's probe)
            callback.error = exc.message
            raise _Transient from None
        except NotSent as exc:
            callback.error = exc.message
            return
        except (requests.ConnectionError, requests.Timeout) as exc:
            callback.error = self.redact(type(exc).__name__)
            raise _Transient from None
        callback.http_status = status = response.status_code
        if status >= 500 or status == 429:
            callback.error = f"HTTP {status}"
            self.asked = retry_after(response.headers.get("Retry-After"))
            raise _Transient
        if 300 <= status < 400:
            # 301/302/303 would turn the POST into a GET and drop the body: not a delivery. The operator fixes the
            # URL; resume sends it again.
            moved = mask_url(urljoin(target, response.headers.get("Location", ""))) or "nowhere"
            callback.error = f"HTTP {status}: the endpoint moved to {moved}; not followed (fix the URL)"
            return
        if status >= 400 or status < 200:
            callback.error = f"HTTP {status} (not retried)"
            return
        self.answered = True
        callback.error = None

    def _post(self, target: str) -> requests.Response:
        # Each try gets what is left of the deadline at most, so that the deadline holds.
        remaining = max(0.1, min(self.policy.timeout, self.deadline - self.clock.monotonic()))
        body, headers = self.body(self.callback)
        self.callback.url = mask_url(target)
        return self.session.post(target, data=body, headers=headers, timeout=remaining, allow_redirects=False)


class Lanes:
    """A thread per URL, delivering its callbacks in the order they were put, once `released` is set.

    Callbacks arrive in the order they were put, within one URL and across URLs: a callback waits until every earlier
    one is delivered or has failed an attempt. Each URL has its own lane so that a failing or hanging one holds the
    others back for one attempt at most (its timeout, if it hangs): then the later callback goes, and the earlier one
    is retried, delivered late or not. `settle(url, callback, delivered)` is called once per callback, from its lane,
    when its tries are over.
    """

    def __init__(
        self,
        policy: CallbackPolicy,
        body: Callable[[Callback], Body],
        settle: Callable[[str, Callback, bool], object],
        *,
        redact: Callable[[str], str],
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.policy = policy
        self.body = body  # made afresh for each try: a new timestamp, its own signature
        self.settle = settle
        self.redact = redact
        self.clock = clock
        self.released = threading.Event()  # nothing is delivered before it is set
        self._put: list[Callback] = []  # every callback put, in order: the ones a later callback waits for
        self._queues: dict[str, queue.Queue[_Item | None]] = {}
        self._threads: list[threading.Thread] = []

    def put(self, url: str, callback: Callback) -> None:
        """Deliver `callback` to `url`, after every callback put before it has passed."""
        callback.passed.clear()
        earlier = tuple(self._put)
        self._put.append(callback)
        self._lane(url).put((url, callback, earlier))

    def close(self, timeout: float) -> None:
        """Let every lane end after the callbacks it has; wait up to `timeout` seconds for them."""
        self.released.set()
        for lane in self._queues.values():
            lane.put(None)
        deadline = self.clock.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - self.clock.monotonic()))

    def _lane(self, url: str) -> queue.Queue[_Item | None]:
        if url not in self._queues:
            lane: queue.Queue[_Item | None] = queue.Queue()
            # Daemon: a hung endpoint must not keep the process alive past close()'s deadline.
            name = f"callbacks-{len(self._queues)}"
            thread = threading.Thread(target=self._work, args=(lane,), name=name, daemon=True)
            self._queues[url] = lane
            self._threads.append(thread)
            thread.start()
        return self._queues[url]

    def _work(self, lane: queue.Queue[_Item | None]) -> None:
        self.released.wait()
        import requests  # here, not at import time: it costs ~120 ms and the main path never needs it

        with requests.Session() as session:
            session.headers["User-Agent"] = USER_AGENT
            while (item := lane.get()) is not None:
                url, callback, earlier = item
                self._wait_for(earlier)
                delivered = False
                try:
                    attempts = Attempts(session, url, callback, self.body, self.policy, self.redact, self.clock)
                    delivered = attempts.run()
                except Exception as exc:
                    callback.error = self.redact(f"{type(exc).__name__}: {exc}")
                callback.passed.set()  # before settling: later callbacks wait for the endpoint, not for the record
                self.settle(url, callback, delivered)

    def _wait_for(self, earlier: tuple[Callback, ...]) -> None:
        """Until every earlier callback is delivered or has failed an attempt, or one attempt's timeout has passed: a
        platform never hears a later step before an earlier one, unless the earlier one's endpoint failed or hangs."""
        bound = self.clock.monotonic() + self.policy.timeout
        for callback in earlier:
            if not callback.passed.wait(max(0.0, bound - self.clock.monotonic())):
                return


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
                f"HTTP {response.status_code} to {mask_url(location) or 'nowhere'}, outside {where(url)}: not "
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


def where(url: str) -> str:
    """The endpoint's host and port for a log line: never its user information."""
    try:
        parts = urlsplit(url)
        return f"{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return "?"
