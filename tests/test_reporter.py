"""Callbacks against a real HTTP server: retried when worth it, in order, bounded by the deadline."""

from __future__ import annotations

from provisioner.definition import CallbackPolicy
from provisioner.reporter import Reporter
from tests.conftest import CallbackServer, free_port

QUICK = CallbackPolicy(timeout=1.0, attempts=4, deadline=3.0)


def no_secrets(text: str) -> str:
    return text.replace("s3cret", "***")


def test_a_callback_is_a_form_post_with_its_fields(callbacks: CallbackServer) -> None:
    reporter = Reporter(QUICK, no_secrets)
    reporter.send("start", callbacks.url("/start"), {"status": "init_started", "state": "loading"})
    [delivery] = reporter.close(10)
    assert delivery.delivered and delivery.attempts == 1 and delivery.http_status == 200
    assert callbacks.forms("/start") == [{"status": "init_started", "state": "loading"}]


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


def test_close_gives_up_on_an_endpoint_that_never_answers(callbacks: CallbackServer) -> None:
    callbacks.script["/hang"] = ["hang"]
    reporter = Reporter(CallbackPolicy(timeout=0.5, attempts=2, deadline=1.0), no_secrets)
    reporter.send("complete", callbacks.url("/hang"), {"status": "init_completed"})
    [delivery] = reporter.close(2.0)
    assert not delivery.delivered
    assert delivery.error in ("ReadTimeout", "not delivered before the callback deadline")
