"""Where a resumed run starts, from the recorded history."""

from __future__ import annotations

from typing import Any

from provisioner.commands import load_definition
from provisioner.journal import Plan, plan_resume

DEFINITION = load_definition(None)
FLOW = ["idle", "validating", "loading", "port_check", "starting", "verifying", "ready"]


def history(*entries: tuple[str, str | None]) -> list[dict[str, Any]]:
    return [
        {"state": state, "outcome": outcome, **({"started_server": True} if state == "starting" else {})}
        for state, outcome in entries
    ]


def done(*states: str) -> list[tuple[str, str | None]]:
    return [(state, "ok") for state in states]


def test_a_failed_port_check_resumes_there_after_reloading_modules() -> None:
    record = {
        "state": "failed",
        "failure": {"state": "port_check", "reason": "port_in_use"},
        "history": history(*done("idle", "validating", "loading"), ("port_check", "failed"), ("failed", "ok")),
    }
    plan = plan_resume(record, DEFINITION, alive=False)
    assert plan == Plan("loading", frozenset({"idle", "validating"}))


def test_an_interrupted_verification_keeps_a_live_server() -> None:
    record = {"state": "verifying", "history": history(*done(*FLOW[:5]), ("verifying", None))}
    plan = plan_resume(record, DEFINITION, alive=True)
    assert plan == Plan("loading", frozenset({"idle", "validating", "port_check", "starting"}))


def test_an_interrupted_verification_with_a_dead_server_starts_it_again() -> None:
    record = {"state": "verifying", "history": history(*done(*FLOW[:5]), ("verifying", None))}
    plan = plan_resume(record, DEFINITION, alive=False)
    assert plan == Plan("loading", frozenset({"idle", "validating", "port_check"}))
    assert "starting" not in plan.skip


def test_a_finished_run_with_a_live_server_has_nothing_left_to_run() -> None:
    record = {"state": "ready", "history": history(*done(*FLOW))}
    assert plan_resume(record, DEFINITION, alive=True) == Plan(None, frozenset())


def test_a_finished_run_whose_server_is_gone_starts_the_server_again() -> None:
    record = {"state": "ready", "history": history(*done(*FLOW))}
    plan = plan_resume(record, DEFINITION, alive=False)
    assert plan.start == "loading" and "starting" not in plan.skip


def test_a_run_interrupted_in_the_ready_action_runs_it_again() -> None:
    record = {"state": "ready", "history": history(*done(*FLOW[:6]), ("ready", None))}
    plan = plan_resume(record, DEFINITION, alive=True)
    assert plan.start == "loading" and "ready" not in plan.skip and "verifying" in plan.skip


def test_a_state_the_definition_no_longer_has_starts_over() -> None:
    record = {"state": "teleporting", "history": history(("teleporting", None))}
    assert plan_resume(record, DEFINITION, alive=False) == Plan("idle", frozenset())
