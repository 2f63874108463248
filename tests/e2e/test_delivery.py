"""Delivery against a real HTTP server: retried when worth it, in order, bounded by the deadline, on a fake clock."""

from __future__ import annotations

import time

from provisioner.definition import CallbackPolicy
from tests.helpers.delivery import put, released
from tests.helpers.receiver import CallbackServer


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
