"""Callbacks against a real HTTP server: the fields and the signed form sent, and what is recorded of each."""

from __future__ import annotations

import hashlib
import hmac
import time

from provisioner.output import Redactor
from provisioner.record import Delivery
from provisioner.reporter import SIGNATURE_HEADER, Reporter
from provisioner.secret import Secret, sign
from tests.helpers.delivery import QUICK, FakeClock, no_secrets
from tests.helpers.receiver import CallbackServer, serving


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
    reporter = Reporter(QUICK, no_secrets, signer=lambda body: sign(body, b"the-shared-token"))
    reporter.send("complete", callbacks.url("/complete"), {"status": "init_completed"})
    reporter.close(10)
    [received] = callbacks.received
    signature = received.headers[SIGNATURE_HEADER]
    expected = hmac.new(b"the-shared-token", received.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signature, f"sha256={expected}")
    forged = hmac.new(b"another-token", received.body, hashlib.sha256).hexdigest()
    assert signature != f"sha256={forged}"
    assert b"the-shared-token" not in received.body


def test_a_callback_is_recorded_pending_before_its_first_attempt(callbacks: CallbackServer) -> None:
    recorded: list[tuple[str, int]] = []
    reporter = Reporter(QUICK, no_secrets, on_queue=lambda c: recorded.append((c.delivery.value, c.attempts)))
    callback = reporter.send("complete", callbacks.url("/complete"), {"status": "init_completed"})
    assert recorded == [("pending", 0)]
    reporter.close(10)
    assert callback is not None and callback.delivery is Delivery.DELIVERED


def test_field_values_pass_through_the_redactor(callbacks: CallbackServer) -> None:
    reporter = Reporter(QUICK, no_secrets)
    reporter.send("complete", callbacks.url("/c"), {"status": "failed", "message": "token s3cret rejected"})
    reporter.close(10)
    assert callbacks.forms("/c")[0]["message"] == "token *** rejected"


def test_a_body_root_would_not_sign_yet_is_tried_again_and_never_sent_unsigned(callbacks: CallbackServer) -> None:
    """Root vouches for a ready server only once its own probe finds it: a refusal is an attempt, not the end."""
    refusals = [OSError("the server on port 1 does not answer with root's token")]

    def signer(body: bytes) -> str:
        if refusals:
            raise refusals.pop()
        return sign(body, b"the-platform-key")

    reporter = Reporter(QUICK, no_secrets, signer=signer, clock=FakeClock())
    reporter.send("complete", callbacks.url("/complete"), {"status": "init_completed"})
    [callback] = reporter.close(10)
    assert callback.delivery is Delivery.DELIVERED and callback.attempts == 2
    [received] = callbacks.received  # the refused attempt sent nothing
    assert received.headers[SIGNATURE_HEADER] == sign(received.body, b"the-platform-key")


def test_a_body_root_never_signs_is_recorded_undelivered_with_why(callbacks: CallbackServer) -> None:
    def signer(body: bytes) -> str:
        raise OSError("no process of alice's listens on port 8008")

    clock = FakeClock()
    reporter = Reporter(QUICK, no_secrets, signer=signer, clock=clock)
    reporter.send("complete", callbacks.url("/complete"), {"status": "init_completed"})
    [callback] = reporter.close(10)
    assert callback.delivery is Delivery.UNDELIVERED
    # Tried again until the policy's last attempt, each wait on the reporter's clock.
    assert callback.attempts == QUICK.attempts and len(clock.slept) == QUICK.attempts - 1
    assert callback.error == "not signed: no process of alice's listens on port 8008"
    assert callbacks.received == []


def test_a_signed_body_and_its_signature_go_nowhere_but_where_the_operator_said(callbacks: CallbackServer) -> None:
    with serving() as elsewhere:
        callbacks.script["/old"] = [307]
        callbacks.headers["/old"] = {"Location": elsewhere.url("/steal")}
        reporter = Reporter(QUICK, no_secrets, signer=lambda body: sign(body, b"the-shared-token"), clock=FakeClock())
        reporter.send("complete", callbacks.url("/old"), {"status": "init_completed"})
        [callback] = reporter.close(10)
        assert callback.delivery is Delivery.UNDELIVERED and "not followed" in (callback.error or "")
        [asked] = callbacks.received
        assert asked.headers[SIGNATURE_HEADER] == sign(asked.body, b"the-shared-token")
        assert elsewhere.received == [], "the signed body went nowhere but where the operator said"
