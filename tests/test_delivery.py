"""Delivery against a real HTTP server: retried when worth it, in order, bounded by the deadline, on a fake clock."""

from __future__ import annotations

import re
import threading
import time
from urllib.parse import urlencode, urlsplit

import pytest

from provisioner.definition import CallbackPolicy
from provisioner.delivery import (
    MAX_REDIRECTS,
    RETRY_AFTER_CAP,
    Body,
    Clock,
    Lanes,
    _follow,
    _NotFollowed,
    retry_after,
)
from provisioner.record import Callback, Delivery
from tests.helpers.net import free_port
from tests.helpers.receiver import CallbackServer, serving

QUICK = CallbackPolicy(timeout=1.0, attempts=4, deadline=3.0)


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


def form(callback: Callback) -> Body:
    return urlencode(callback.fields).encode(), {"Content-Type": "application/x-www-form-urlencoded"}


def settle(url: str, callback: Callback, delivered: bool) -> None:
    callback.delivery = Delivery.DELIVERED if delivered else Delivery.UNDELIVERED
    callback.done.set()


def released(policy: CallbackPolicy = QUICK, clock: Clock | None = None) -> Lanes:
    lanes = Lanes(policy, form, settle, redact=lambda text: text, clock=clock or FakeClock())
    lanes.released.set()
    return lanes


def put(lanes: Lanes, url: str, status: str) -> Callback:
    callback = Callback("complete", {"status": status})
    lanes.put(url, callback)
    return callback


def deliver(url: str, policy: CallbackPolicy = QUICK, clock: Clock | None = None) -> Callback:
    """One callback to `url`, its tries over."""
    lanes = released(policy, clock)
    callback = put(lanes, url, "init_completed")
    lanes.close(10)
    return callback


def test_a_server_error_is_retried_until_it_succeeds(callbacks: CallbackServer) -> None:
    callbacks.script["/complete"] = [500, 503, 200]
    callback = deliver(callbacks.url("/complete"))
    assert callback.delivered and callback.attempts == 3 and callback.http_status == 200
    assert len(callbacks.forms("/complete")) == 3


def test_a_client_error_is_not_retried(callbacks: CallbackServer) -> None:
    callbacks.script["/complete"] = [404]
    callback = deliver(callbacks.url("/complete"))
    assert not callback.delivered and callback.attempts == 1 and callback.http_status == 404
    assert "not retried" in (callback.error or "")


def test_an_endpoint_that_is_down_is_given_up_on_within_the_policy() -> None:
    callback = deliver(f"http://127.0.0.1:{free_port()}/start")
    assert not callback.delivered
    assert 1 < callback.attempts <= QUICK.attempts
    assert callback.error == "ConnectionError"


def test_callbacks_to_one_endpoint_arrive_in_the_order_they_were_sent(callbacks: CallbackServer) -> None:
    callbacks.script["/start"] = [503, 200]  # the first one needs a retry; the second must still come after it
    lanes = released()
    put(lanes, callbacks.url("/start"), "init_started")
    put(lanes, callbacks.url("/start"), "failed")
    lanes.close(10)
    assert [form["status"] for form in callbacks.forms("/start")] == ["init_started", "init_started", "failed"]


def test_an_endpoint_that_hangs_holds_back_another_for_one_attempts_timeout_at_most(callbacks: CallbackServer) -> None:
    """The platform hears init_completed when the server is ready, whatever its START endpoint does: after START's
    first attempt has had its timeout, not after its retries."""
    callbacks.script["/start"] = ["hang"]
    policy = CallbackPolicy(timeout=1.0, attempts=3, deadline=10.0)
    lanes = released(policy)
    put(lanes, callbacks.url("/start"), "init_started")
    callbacks.wait_for(1, "/start")
    queued = time.monotonic()
    put(lanes, callbacks.url("/complete"), "init_completed")
    assert callbacks.wait_for(1, "/complete", timeout=5.0) != []
    first = next(r for r in callbacks.received if r.path == "/complete")
    assert policy.timeout * 0.9 <= first.at - queued < policy.timeout + 1.5
    lanes.close(0.5)


def test_an_endpoint_that_refuses_holds_back_another_for_one_attempt_not_its_retries(
    callbacks: CallbackServer,
) -> None:
    policy = CallbackPolicy(timeout=3.0, attempts=6, deadline=20.0)
    clock = FakeClock(held=True)  # the refused one waits in its first backoff until the end of the test
    lanes = released(policy, clock)
    queued = time.monotonic()
    refused = put(lanes, f"http://127.0.0.1:{free_port()}/p", "loading")
    put(lanes, callbacks.url("/start"), "init_started")
    [started] = callbacks.wait_for(1, "/start", timeout=5.0)
    assert started["status"] == "init_started"
    arrived = next(r for r in callbacks.received if r.path == "/start").at
    assert arrived - queued < policy.timeout, "not held for the timeout: the refusal was an answer"
    assert not refused.done.is_set(), "the refused one is still being retried"
    clock.go.set()
    lanes.close(0.5)


def test_callbacks_reach_healthy_endpoints_in_the_order_they_were_sent(callbacks: CallbackServer) -> None:
    """Across endpoints too: a platform that keeps the last status it heard must not hear `failed` and then
    `init_started`. Each endpoint has a lane of its own, so this raced before."""
    for round_ in range(50):
        lanes = released()
        put(lanes, callbacks.url(f"/p{round_}"), "loading")
        put(lanes, callbacks.url(f"/s{round_}"), "init_started")
        put(lanes, callbacks.url(f"/c{round_}"), "failed")
        lanes.close(10)
        got = [r.path for r in callbacks.received if r.path[2:] == str(round_)]
        assert got == [f"/p{round_}", f"/s{round_}", f"/c{round_}"], round_


@pytest.mark.parametrize("status", [307, 308])
def test_a_temporary_or_permanent_redirect_that_keeps_the_post_is_followed(
    callbacks: CallbackServer, status: int
) -> None:
    callbacks.script["/old"] = [status]
    callbacks.headers["/old"] = {"Location": "/new?key=abcdef"}
    callback = deliver(callbacks.url("/old"))
    assert callback.delivered and callback.http_status == 200
    assert callback.url == callbacks.url("/new?key=***")  # where it went, without the query's value
    assert [r.path for r in callbacks.received] == ["/old", "/new?key=abcdef"]
    assert callbacks.received[0].body == callbacks.received[1].body  # the same form, POSTed again


@pytest.mark.parametrize("status", [301, 302, 303])
def test_a_redirect_that_would_turn_the_post_into_a_get_is_not_delivery(callbacks: CallbackServer, status: int) -> None:
    callbacks.script["/old"] = [status]
    callbacks.headers["/old"] = {"Location": "https://platform.example/new"}
    callback = deliver(callbacks.url("/old"))
    assert callback.delivery is Delivery.UNDELIVERED and callback.attempts == 1
    assert (
        callback.error
        == f"HTTP {status}: the endpoint moved to https://platform.example/new; not followed (fix the URL)"
    )
    assert len(callbacks.received) == 1


@pytest.mark.parametrize(
    "location",
    [
        "http://platform.example/cb",  # from https down to http
        "https://platform.example:8443/cb",  # another port
        "https://evil.example/cb",  # another host
        "file:///etc/passwd",
        "ftp://platform.example/cb",
    ],
)
def test_a_redirect_outside_the_urls_origin_is_not_followed(location: str) -> None:
    class Moved:
        status_code = 307

        def __init__(self, location: str) -> None:
            self.headers = {"Location": location}

    posted: list[str] = []

    def post(target: str) -> Moved:
        posted.append(target)
        return Moved(location)

    with pytest.raises(_NotFollowed, match=rf"^HTTP 307 to {re.escape(location)}, outside platform.example"):
        _follow(post, "https://platform.example/cb")  # type: ignore[arg-type]
    assert posted == ["https://platform.example/cb"]
    # Within the origin, its default port spelled out or not, it is followed (here until the hops run out).
    with pytest.raises(_NotFollowed, match="more than"):
        hop = lambda target: Moved(f"https://PLATFORM.example:443{urlsplit(target).path}x")  # noqa: E731
        _follow(hop, "https://platform.example/cb")  # type: ignore[arg-type]


def test_a_redirect_to_another_server_is_recorded_undelivered_naming_where_it_pointed(
    callbacks: CallbackServer,
) -> None:
    with serving() as elsewhere:
        callbacks.script["/old"] = [307]
        callbacks.headers["/old"] = {"Location": elsewhere.url("/steal")}
        callback = deliver(callbacks.url("/old"))
        assert callback.delivery is Delivery.UNDELIVERED and callback.attempts == 1
        assert callback.error == (
            f"HTTP 307 to {elsewhere.url('/steal')}, outside 127.0.0.1:{callbacks.server.server_address[1]}: "
            "not followed (fix the URL)"
        )
        assert elsewhere.received == [], "the body went nowhere but where the operator said"


def test_a_redirect_loop_ends_after_a_few_hops(callbacks: CallbackServer) -> None:
    callbacks.script["/a"], callbacks.script["/b"] = [307], [307]
    callbacks.headers["/a"], callbacks.headers["/b"] = {"Location": "/b"}, {"Location": "/a"}
    callback = deliver(callbacks.url("/a"))
    assert callback.delivery is Delivery.UNDELIVERED
    assert callback.error == f"more than {MAX_REDIRECTS} redirects from {callbacks.url('/a')}"
    assert len(callbacks.received) == MAX_REDIRECTS + 1


def test_retry_after_is_honoured(callbacks: CallbackServer) -> None:
    callbacks.script["/busy"] = [503, 200]
    callbacks.headers["/busy"] = {"Retry-After": "1"}
    clock = FakeClock()
    callback = deliver(callbacks.url("/busy"), clock=clock)
    assert callback.delivered and callback.attempts == 2
    assert clock.slept == [1.0]  # the backoff alone would have waited about 0.2 s


def test_retry_after_is_capped() -> None:
    assert retry_after("3") == 3.0
    assert retry_after("86400") == RETRY_AFTER_CAP
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past
    assert retry_after("soon") is None
    assert retry_after(None) is None


def test_an_endpoint_that_is_always_unavailable_is_given_up_on_at_the_deadline(callbacks: CallbackServer) -> None:
    callbacks.script["/down"] = [503]
    clock = FakeClock()
    callback = deliver(callbacks.url("/down"), CallbackPolicy(timeout=1.0, attempts=100, deadline=1.5), clock)
    assert not callback.delivered and callback.http_status == 503
    assert 1 < callback.attempts < 100
    span = callbacks.received[-1].at - callbacks.received[0].at + sum(clock.slept)  # on the clock delivery went by
    assert span < 1.5  # the next try would have started past the deadline, so it was not made
