"""Callbacks against a real HTTP server: retried when worth it, in order, bounded by the deadline."""

from __future__ import annotations

import hashlib
import hmac
import time

from provisioner.definition import CallbackPolicy
from provisioner.reporter import RETRY_AFTER_CAP, SIGNATURE_HEADER, Reporter, retry_after
from provisioner.settings import Secret
from tests.conftest import CallbackServer, free_port

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


def test_a_signed_callback_verifies_with_the_token_and_only_with_it(callbacks: CallbackServer) -> None:
    reporter = Reporter(QUICK, no_secrets, key=Secret("the-shared-token"))
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


def test_callbacks_arrive_in_the_order_they_were_sent(callbacks: CallbackServer) -> None:
    callbacks.script["/start"] = [503, 200]  # the first one needs a retry; the second must still come after it
    reporter = Reporter(QUICK, no_secrets)
    reporter.send("start", callbacks.url("/start"), {"status": "init_started"})
    reporter.send("complete", callbacks.url("/complete"), {"status": "init_completed"})
    reporter.close(10)
    order = [(r.path, r.form["status"]) for r in callbacks.received]
    assert order == [("/start", "init_started"), ("/start", "init_started"), ("/complete", "init_completed")]


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


def test_callbacks_wait_for_release_and_keep_their_order(callbacks: CallbackServer) -> None:
    """The machine releases the reporter once the server is started, so that callbacks never slow its start."""
    reporter = Reporter(QUICK, no_secrets, warm=True)
    reporter.send("start", callbacks.url("/start"), {"status": "init_started"})
    reporter.send("complete", callbacks.url("/complete"), {"status": "init_completed"})
    time.sleep(0.3)
    assert callbacks.received == []
    reporter.release()
    assert [form["status"] for form in callbacks.wait_for(2)] == ["init_started", "init_completed"]
    reporter.close(10)
