"""Where a resumed run starts, from the recorded history."""

from __future__ import annotations

from typing import Any

from provisioner import recordread
from provisioner.record import SCHEMA, Record
from provisioner.resumeplan import Plan, plan_adoption, plan_resume
from tests.helpers.definitions import DEFINITION, FLOW


def history(*entries: tuple[str, str | None]) -> list[dict[str, Any]]:
    return [
        {"state": state, "outcome": outcome, **({"started_server": True} if state == "starting" else {})}
        for state, outcome in entries
    ]


def done(*states: str) -> list[tuple[str, str | None]]:
    return [(state, "ok") for state in states]


def recorded(**fields: Any) -> Record:
    """A record as the state file would hold it, read by the same parser."""
    return recordread.parse({"schema": SCHEMA, **fields}, lambda settings: True)


def test_a_failed_port_check_resumes_there_after_reloading_modules() -> None:
    record = recorded(
        **{
            "state": "failed",
            "failure": {"state": "port_check", "reason": "port_in_use"},
            "history": history(*done("idle", "validating", "loading"), ("port_check", "failed"), ("failed", "ok")),
        }
    )
    plan = plan_resume(record, DEFINITION, alive=False)
    assert plan == Plan("loading", frozenset({"idle", "validating"}))


def test_an_interrupted_verification_keeps_a_live_server() -> None:
    record = recorded(**{"state": "verifying", "history": history(*done(*FLOW[:5]), ("verifying", None))})
    plan = plan_resume(record, DEFINITION, alive=True)
    assert plan == Plan("loading", frozenset({"idle", "validating", "port_check", "starting"}))


def test_an_interrupted_verification_with_a_dead_server_starts_it_again() -> None:
    record = recorded(**{"state": "verifying", "history": history(*done(*FLOW[:5]), ("verifying", None))})
    plan = plan_resume(record, DEFINITION, alive=False)
    assert plan == Plan("loading", frozenset({"idle", "validating", "port_check"}))
    assert "starting" not in plan.skip


def test_a_finished_run_with_a_live_server_has_nothing_left_to_run() -> None:
    record = recorded(**{"state": "ready", "history": history(*done(*FLOW))})
    assert plan_resume(record, DEFINITION, alive=True) == Plan(None, frozenset())


def test_a_finished_run_whose_server_is_gone_starts_the_server_again() -> None:
    record = recorded(**{"state": "ready", "history": history(*done(*FLOW))})
    plan = plan_resume(record, DEFINITION, alive=False)
    assert plan.start == "loading" and "starting" not in plan.skip


def test_a_run_interrupted_in_the_ready_action_runs_it_again() -> None:
    record = recorded(**{"state": "ready", "history": history(*done(*FLOW[:6]), ("ready", None))})
    plan = plan_resume(record, DEFINITION, alive=True)
    assert plan.start == "loading" and "ready" not in plan.skip and "verifying" in plan.skip


def test_a_state_the_definition_no_longer_has_starts_over() -> None:
    record = recorded(**{"state": "teleporting", "history": history(("teleporting", None))})
    assert plan_resume(record, DEFINITION, alive=False) == Plan("idle", frozenset())


def test_a_stopped_run_starts_its_server_again_on_resume() -> None:
    record = recorded(
        state="stopped", outcome="stopped", history=[*history(*done(*FLOW)), {"state": "stopped", "outcome": "ok"}]
    )
    plan = plan_resume(record, DEFINITION, alive=False)
    assert plan.start == "loading" and "starting" not in plan.skip and "validating" in plan.skip


def test_a_repeated_run_adopting_a_live_server_goes_through_every_state_but_the_ones_that_started_it() -> None:
    record = recorded(state="ready", outcome="ready", history=history(*done(*FLOW)))
    plan = plan_adoption(record, DEFINITION)
    assert plan == Plan("idle", frozenset({"idle", "validating", "port_check", "starting"}))


def test_a_record_that_does_not_say_which_state_started_the_server_cannot_be_adopted() -> None:
    record = recorded(state="ready", outcome="ready", history=[{"state": s, "outcome": "ok"} for s in FLOW])
    assert plan_adoption(record, DEFINITION) is None


def test_a_run_killed_between_two_states_goes_on_with_the_next_and_keeps_its_server() -> None:
    record = recorded(state="starting", history=history(*done(*FLOW[:5])))  # starting left ok; verifying not entered
    assert plan_resume(record, DEFINITION, alive=True) == Plan(
        "loading", frozenset({"idle", "validating", "port_check", "starting"})
    )
    between = recorded(state="validating", history=history(*done("idle", "validating")))
    # init_started is sent on the way out of validating: passing through it again sends it if it was not queued.
    assert plan_resume(between, DEFINITION, alive=False) == Plan("validating", frozenset({"idle", "validating"}))
    assert "starting" not in plan_resume(record, DEFINITION, alive=False).skip  # its server is gone: start it again


def test_a_run_killed_after_spawning_in_the_starting_state_does_not_start_another() -> None:
    steps = [*history(*done(*FLOW[:4])), {"state": "starting", "outcome": None, "started_server": True}]
    record = recorded(state="starting", history=steps)
    assert "starting" in plan_resume(record, DEFINITION, alive=True).skip
    assert "starting" not in plan_resume(record, DEFINITION, alive=False).skip


def test_a_record_naming_states_this_definition_lacks_starts_over_instead_of_failing() -> None:
    renamed = recorded(
        state="port_check",
        failure={"state": "teleporting", "reason": "port_in_use", "message": "m"},
        history=[*history(*done("idle", "validating")), {"state": "teleporting", "outcome": "failed"}],
    )
    assert plan_resume(renamed, DEFINITION, alive=False) == Plan("idle", frozenset())
    started_by_unknown = recorded(
        state="ready", outcome="ready", history=[{"state": "beaming", "outcome": "ok", "started_server": True}]
    )
    assert plan_adoption(started_by_unknown, DEFINITION) is None


def test_a_server_lost_a_second_time_is_started_and_verified_again() -> None:
    """Stopped (or rebooted) twice: what was done after the first server started is about a server that is gone."""
    first = [*history(*done(*FLOW)), {"state": "stopped", "outcome": "ok"}]
    second = [
        {"state": "loading", "outcome": "ok"},
        {"state": "port_check", "outcome": "ok"},
        {"state": "starting", "outcome": "ok", "started_server": True},
        *[{"state": state, "outcome": "ok"} for state in ("verifying", "ready")],
        {"state": "stopped", "outcome": "ok"},
    ]
    record = recorded(state="stopped", outcome="stopped", history=first + second)
    plan = plan_resume(record, DEFINITION, alive=False)
    assert "starting" not in plan.skip and "verifying" not in plan.skip
