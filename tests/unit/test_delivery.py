"""Delivery against a real HTTP server: retried when worth it, in order, bounded by the deadline, on a fake clock."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest

from provisioner.definition import CallbackPolicy
from provisioner.delivery import (
    MAX_REDIRECTS,
    RETRY_AFTER_CAP,
    Clock,
    _follow,
    _NotFollowed,
    retry_after,
)
from provisioner.record import Callback, Delivery
from tests.helpers.constants import CHECKOUT
from tests.helpers.delivery import QUICK, FakeClock, put, released
from tests.helpers.net import free_port
from tests.helpers.receiver import CallbackServer, serving


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


def test_the_waits_between_tries_double_from_a_fifth_of_a_second_with_a_little_jitter(
    callbacks: CallbackServer,
) -> None:
    callbacks.script["/complete"] = [503, 503, 503, 200]
    clock = FakeClock()
    callback = deliver(callbacks.url("/complete"), clock=clock)
    assert callback.delivered and callback.attempts == 4
    # The first try is made without tenacity and the rest with it: the backoff goes on across the two.
    assert len(clock.slept) == 3
    for slept, base in zip(clock.slept, (0.2, 0.4, 0.8)):
        assert base <= slept <= base + 0.2


def test_a_policy_of_one_attempt_makes_one_try_and_waits_for_nothing(callbacks: CallbackServer) -> None:
    callbacks.script["/complete"] = [503]
    clock = FakeClock()
    callback = deliver(callbacks.url("/complete"), CallbackPolicy(timeout=1.0, attempts=1, deadline=3.0), clock)
    assert not callback.delivered and callback.attempts == 1 and callback.http_status == 503
    assert clock.slept == [] and len(callbacks.forms("/complete")) == 1


def test_a_callback_answered_at_once_never_imports_tenacity(callbacks: CallbackServer) -> None:
    """tenacity brings tornado and asyncio where Jupyter is installed (~50 ms, 4 MB): only a retry pays for it."""
    program = f"""
import sys
from tests.helpers.delivery import put, released
lanes = released()
callback = put(lanes, {callbacks.url("/complete")!r}, "init_completed")
lanes.close(10)
print(callback.delivered, "tenacity" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=CHECKOUT, check=True)
    assert done.stdout.split() == ["True", "False"]


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
