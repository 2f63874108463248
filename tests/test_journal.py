"""Where a resumed run starts, from the recorded history."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from provisioner.commands import load_definition
from provisioner.context import RunContext
from provisioner.journal import Journal, Plan, plan_resume
from provisioner.settings import Settings

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


class _WatchfulStore:
    """Stands in for the state file: takes its time to write, and notes any change to the record meanwhile."""

    def __init__(self) -> None:
        self.saves = 0
        self.changed_while_saving = 0

    def save(self, record: dict[str, Any]) -> None:
        before = json.dumps(record)
        time.sleep(0.002)  # a write and an fsync
        self.changed_while_saving += json.dumps(record) != before
        self.saves += 1


def test_a_save_from_a_callback_thread_never_sees_the_record_change_under_it(tmp_path: Path) -> None:
    """Callbacks finish, and save the record, in the reporter's threads while the machine changes it."""
    store = _WatchfulStore()
    journal = Journal(store)  # type: ignore[arg-type]
    ctx = RunContext(settings=Settings(home=tmp_path))
    journal.begin(DEFINITION, ctx.settings, ctx, [])
    done = threading.Event()

    def save_again_and_again() -> None:
        while not done.is_set():
            journal.save()

    saver = threading.Thread(target=save_again_and_again)
    saver.start()
    for _ in range(100):
        journal.enter("loading")
        journal.leave("ok")
    done.set()
    saver.join()
    assert store.saves > 200
    assert store.changed_while_saving == 0
