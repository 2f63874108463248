"""Callbacks against a real HTTP server: the fields and the signed form sent, and what is recorded of each."""

from __future__ import annotations

import time

from provisioner.definition import CallbackPolicy
from provisioner.reporter import Reporter
from tests.helpers.delivery import QUICK, FakeClock, no_secrets
from tests.helpers.receiver import CallbackServer


def test_close_gives_up_on_an_endpoint_that_never_answers(callbacks: CallbackServer) -> None:
    callbacks.script["/hang"] = ["hang"]
    policy = CallbackPolicy(timeout=0.5, attempts=2, deadline=1.0)
    reporter = Reporter(policy, no_secrets, clock=FakeClock())
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
