"""Callbacks against a real HTTP server: retried when worth it, in order, bounded by the deadline."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from urllib.parse import urlsplit

import pytest

from provisioner import signing
from provisioner.definition import CallbackPolicy
from provisioner.output import Redactor
from provisioner.record import Delivery
from provisioner.reporter import (
    MAX_REDIRECTS,
    RETRY_AFTER_CAP,
    SIGNATURE_HEADER,
    Reporter,
    _follow,
    _NotFollowed,
    retry_after,
)
from provisioner.settings import Secret
from tests.conftest import CallbackServer, free_port, serving

QUICK = CallbackPolicy(timeout=1.0, attempts=4, deadline=3.0)


def no_secrets(text: str) -> str:
    return text.replace("s3cret", "***")


def test_a_callback_is_a_form_post_with_its_fields_and_a_timestamp(callbacks: CallbackServer) -> None:
    reporter = Reporter(QUICK, no_secrets)
    reporter.send("start", callbacks.url("/start"), {"status": "init_started", "state": "loading"})
    [delivery] = reporter.close(10)
    assert delivery.delivered and delivery.attempts == 1 and delivery.http_status == 200
    [form] = callbacks.forms("/start")
    assert abs(int(form.pop("timestamp")) - time.time()) < 60
    assert form == {"status": "init_started", "state": "loading"}
    assert SIGNATURE_HEADER not in callbacks.received[0].headers  # no token, nothing to sign with


def test_our_own_fields_are_never_redacted_and_the_rest_is(callbacks: CallbackServer) -> None:
    """A short loopback token may equal a state's name: the state stays, the message that quotes it is masked."""
    redact = Redactor()
    redact.add(Secret("ready"))
    reporter = Reporter(QUICK, redact)
    fields = {"status": "ready", "state": "ready", "reason": "ready", "pid": "7", "message": "token ready leaked"}
    reporter.send("progress", callbacks.url("/p"), fields)
    reporter.close(10)
    [form] = callbacks.forms("/p")
    assert form | {"timestamp": ""} == fields | {"message": "token *** leaked", "timestamp": ""}


def test_a_signed_callback_verifies_with_the_token_and_only_with_it(callbacks: CallbackServer) -> None:
    reporter = Reporter(QUICK, no_secrets, signer=lambda body: signing.sign(body, b"the-shared-token"))
    reporter.send("complete", callbacks.url("/complete"), {"status": "init_completed"})
    reporter.close(10)
    [received] = callbacks.received
    signature = received.headers[SIGNATURE_HEADER]
    expected = hmac.new(b"the-shared-token", received.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signature, f"sha256={expected}")
    forged = hmac.new(b"another-token", received.body, hashlib.sha256).hexdigest()
    assert signature != f"sha256={forged}"
    assert b"the-shared-token" not in received.body


def test_a_server_error_is_retried_until_it_succeeds(callbacks: CallbackServer) -> None:
    callbacks.script["/complete"] = [500, 503, 200]
    reporter = Reporter(QUICK, no_secrets)
    reporter.send("complete", callbacks.url("/complete"), {"status": "init_completed"})
    [delivery] = reporter.close(10)
    assert delivery.delivered and delivery.attempts == 3
    assert len(callbacks.forms("/complete")) == 3


def test_a_client_error_is_not_retried(callbacks: CallbackServer) -> None:
    callbacks.script["/complete"] = [404]
    reporter = Reporter(QUICK, no_secrets)
    reporter.send("complete", callbacks.url("/complete"), {"status": "init_completed"})
    [delivery] = reporter.close(10)
    assert not delivery.delivered and delivery.attempts == 1 and delivery.http_status == 404
    assert "not retried" in (delivery.error or "")


def test_an_endpoint_that_is_down_is_given_up_on_within_the_policy() -> None:
    reporter = Reporter(QUICK, no_secrets)
    reporter.send("start", f"http://127.0.0.1:{free_port()}/start", {"status": "init_started"})
    [delivery] = reporter.close(10)
    assert not delivery.delivered
    assert 1 < delivery.attempts <= QUICK.attempts
    assert delivery.error == "ConnectionError"


def test_callbacks_to_one_endpoint_arrive_in_the_order_they_were_sent(callbacks: CallbackServer) -> None:
    callbacks.script["/start"] = [503, 200]  # the first one needs a retry; the second must still come after it
    reporter = Reporter(QUICK, no_secrets)
    reporter.send("start", callbacks.url("/start"), {"status": "init_started"})
    reporter.send("start", callbacks.url("/start"), {"status": "failed", "reason": "no_token"})
    reporter.close(10)
    assert [form["status"] for form in callbacks.forms("/start")] == ["init_started", "init_started", "failed"]


def test_an_endpoint_that_hangs_holds_back_another_for_one_attempts_timeout_at_most(callbacks: CallbackServer) -> None:
    """The platform hears init_completed when the server is ready, whatever its START endpoint does: after START's
    first attempt has had its timeout, not after its retries."""
    callbacks.script["/start"] = ["hang"]
    policy = CallbackPolicy(timeout=1.0, attempts=3, deadline=10.0)
    reporter = Reporter(policy, no_secrets)
    reporter.release()
    reporter.send("start", callbacks.url("/start"), {"status": "init_started"})
    callbacks.wait_for(1, "/start")
    queued = time.monotonic()
    reporter.send("complete", callbacks.url("/complete"), {"status": "init_completed"})
    assert callbacks.wait_for(1, "/complete", timeout=5.0) != []
    first = next(r for r in callbacks.received if r.path == "/complete")
    assert policy.timeout * 0.9 <= first.at - queued < policy.timeout + 1.5
    reporter.close(0.5)


def test_an_endpoint_that_refuses_holds_back_another_for_one_attempt_not_its_retries(
    callbacks: CallbackServer,
) -> None:
    policy = CallbackPolicy(timeout=3.0, attempts=6, deadline=20.0)
    reporter = Reporter(policy, no_secrets)
    reporter.release()
    queued = time.monotonic()
    refused = reporter.send("progress", f"http://127.0.0.1:{free_port()}/p", {"status": "loading"})
    reporter.send("start", callbacks.url("/start"), {"status": "init_started"})
    [started] = callbacks.wait_for(1, "/start", timeout=5.0)
    assert started["status"] == "init_started"
    arrived = next(r for r in callbacks.received if r.path == "/start").at
    assert arrived - queued < policy.timeout, "not held for the timeout: the refusal was an answer"
    assert refused is not None and not refused.done.is_set(), "the refused one is still being retried"
    reporter.close(0.5)


def test_callbacks_reach_healthy_endpoints_in_the_order_they_were_sent(callbacks: CallbackServer) -> None:
    """Across endpoints too: a platform that keeps the last status it heard must not hear `failed` and then
    `init_started`. Each endpoint has a lane of its own, so this raced before."""
    for round_ in range(50):
        reporter = Reporter(QUICK, no_secrets)
        reporter.send("progress", callbacks.url(f"/p{round_}"), {"status": "loading"})
        reporter.send("start", callbacks.url(f"/s{round_}"), {"status": "init_started"})
        reporter.send("complete", callbacks.url(f"/c{round_}"), {"status": "failed", "reason": "port_in_use"})
        reporter.close(10)
        got = [r.path for r in callbacks.received if r.path[2:] == str(round_)]
        assert got == [f"/p{round_}", f"/s{round_}", f"/c{round_}"], round_


def test_a_callback_is_recorded_pending_before_its_first_attempt(callbacks: CallbackServer) -> None:
    recorded: list[tuple[str, int]] = []
    reporter = Reporter(QUICK, no_secrets, on_queue=lambda c: recorded.append((c.delivery.value, c.attempts)))
    callback = reporter.send("complete", callbacks.url("/complete"), {"status": "init_completed"})
    assert recorded == [("pending", 0)]
    reporter.close(10)
    assert callback is not None and callback.delivery is Delivery.DELIVERED


@pytest.mark.parametrize("status", [307, 308])
def test_a_temporary_or_permanent_redirect_that_keeps_the_post_is_followed(
    callbacks: CallbackServer, status: int
) -> None:
    callbacks.script["/old"] = [status]
    callbacks.headers["/old"] = {"Location": "/new?key=abcdef"}
    reporter = Reporter(QUICK, no_secrets)
    reporter.send("complete", callbacks.url("/old"), {"status": "init_completed"})
    [callback] = reporter.close(10)
    assert callback.delivered and callback.http_status == 200
    assert callback.url == callbacks.url("/new?key=***")  # where it went, without the query's value
    assert [r.path for r in callbacks.received] == ["/old", "/new?key=abcdef"]
    assert callbacks.received[0].body == callbacks.received[1].body  # the same form, POSTed again


@pytest.mark.parametrize("status", [301, 302, 303])
def test_a_redirect_that_would_turn_the_post_into_a_get_is_not_delivery(callbacks: CallbackServer, status: int) -> None:
    callbacks.script["/old"] = [status]
    callbacks.headers["/old"] = {"Location": "https://platform.example/new"}
    reporter = Reporter(QUICK, no_secrets)
    reporter.send("complete", callbacks.url("/old"), {"status": "init_completed"})
    [callback] = reporter.close(10)
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
        reporter = Reporter(QUICK, no_secrets, signer=lambda body: signing.sign(body, b"the-shared-token"))
        reporter.send("complete", callbacks.url("/old"), {"status": "init_completed"})
        [callback] = reporter.close(10)
        assert callback.delivery is Delivery.UNDELIVERED and callback.attempts == 1
        assert callback.error == (
            f"HTTP 307 to {elsewhere.url('/steal')}, outside 127.0.0.1:{callbacks.server.server_address[1]}: "
            "not followed (fix the URL)"
        )
        assert elsewhere.received == [], "the signed body went nowhere but where the operator said"


def test_a_redirect_loop_ends_after_a_few_hops(callbacks: CallbackServer) -> None:
    callbacks.script["/a"], callbacks.script["/b"] = [307], [307]
    callbacks.headers["/a"], callbacks.headers["/b"] = {"Location": "/b"}, {"Location": "/a"}
    reporter = Reporter(QUICK, no_secrets)
    reporter.send("complete", callbacks.url("/a"), {"status": "init_completed"})
    [callback] = reporter.close(10)
    assert callback.delivery is Delivery.UNDELIVERED
    assert callback.error == f"more than {MAX_REDIRECTS} redirects from {callbacks.url('/a')}"
    assert len(callbacks.received) == MAX_REDIRECTS + 1


def test_field_values_pass_through_the_redactor(callbacks: CallbackServer) -> None:
    reporter = Reporter(QUICK, no_secrets)
    reporter.send("complete", callbacks.url("/c"), {"status": "failed", "message": "token s3cret rejected"})
    reporter.close(10)
    assert callbacks.forms("/c")[0]["message"] == "token *** rejected"


def test_retry_after_is_honoured(callbacks: CallbackServer) -> None:
    callbacks.script["/busy"] = [503, 200]
    callbacks.headers["/busy"] = {"Retry-After": "1"}
    reporter = Reporter(QUICK, no_secrets)
    reporter.send("complete", callbacks.url("/busy"), {"status": "init_completed"})
    [delivery] = reporter.close(10)
    assert delivery.delivered and delivery.attempts == 2
    first, second = callbacks.received
    assert second.at - first.at >= 0.95  # the backoff alone would have waited about 0.2 s


def test_retry_after_is_capped() -> None:
    assert retry_after("3") == 3.0
    assert retry_after("86400") == RETRY_AFTER_CAP
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past
    assert retry_after("soon") is None
    assert retry_after(None) is None


def test_an_endpoint_that_is_always_unavailable_is_given_up_on_at_the_deadline(callbacks: CallbackServer) -> None:
    callbacks.script["/down"] = [503]
    reporter = Reporter(CallbackPolicy(timeout=1.0, attempts=100, deadline=1.5), no_secrets)
    reporter.send("complete", callbacks.url("/down"), {"status": "init_completed"})
    [delivery] = reporter.close(10)
    assert not delivery.delivered and delivery.http_status == 503
    assert 1 < delivery.attempts < 100
    span = callbacks.received[-1].at - callbacks.received[0].at
    assert span < 1.5  # the next try would have started past the deadline, so it was not made


def test_close_gives_up_on_an_endpoint_that_never_answers(callbacks: CallbackServer) -> None:
    callbacks.script["/hang"] = ["hang"]
    reporter = Reporter(CallbackPolicy(timeout=0.5, attempts=2, deadline=1.0), no_secrets)
    reporter.send("complete", callbacks.url("/hang"), {"status": "init_completed"})
    [delivery] = reporter.close(2.0)
    assert not delivery.delivered
    assert delivery.error in ("ReadTimeout", "not delivered before the callback deadline")


def test_callbacks_wait_for_release(callbacks: CallbackServer) -> None:
    """The machine releases the reporter once the server is started, so that callbacks never slow its start."""
    reporter = Reporter(QUICK, no_secrets, warm=True)
    reporter.send("start", callbacks.url("/start"), {"status": "init_started"})
    reporter.send("complete", callbacks.url("/complete"), {"status": "init_completed"})
    time.sleep(0.3)
    assert callbacks.received == []
    reporter.release()
    assert sorted(form["status"] for form in callbacks.wait_for(2)) == ["init_completed", "init_started"]
    reporter.close(10)


def test_a_body_root_would_not_sign_yet_is_tried_again_and_never_sent_unsigned(callbacks: CallbackServer) -> None:
    """Root vouches for a ready server only once its own probe finds it: a refusal is an attempt, not the end."""
    refusals = [OSError("the server on port 1 does not answer with root's token")]

    def signer(body: bytes) -> str:
        if refusals:
            raise refusals.pop()
        return signing.sign(body, b"the-platform-key")

    reporter = Reporter(QUICK, no_secrets, signer=signer)
    reporter.send("complete", callbacks.url("/complete"), {"status": "init_completed"})
    [callback] = reporter.close(10)
    assert callback.delivery is Delivery.DELIVERED and callback.attempts == 2
    [received] = callbacks.received  # the refused attempt sent nothing
    assert received.headers[SIGNATURE_HEADER] == signing.sign(received.body, b"the-platform-key")


def test_a_body_root_never_signs_is_recorded_undelivered_with_why(callbacks: CallbackServer) -> None:
    def signer(body: bytes) -> str:
        raise OSError("no process of alice's listens on port 8008")

    reporter = Reporter(QUICK, no_secrets, signer=signer)
    reporter.send("complete", callbacks.url("/complete"), {"status": "init_completed"})
    [callback] = reporter.close(10)
    assert callback.delivery is Delivery.UNDELIVERED
    assert callback.error == "not signed: no process of alice's listens on port 8008"
    assert callbacks.received == []
