"""The journal: the record kept as a run goes, saved whole whatever thread saves it, without a secret."""

from __future__ import annotations

import json
from pathlib import Path

from provisioner.context import RunContext
from provisioner.journal import Journal
from provisioner.record import Server, StepOutcome
from provisioner.resumeplan import plan_adoption, plan_resume
from provisioner.settings import Settings
from tests.helpers.definitions import DEFINITION, FLOW


def test_an_adopting_run_records_which_state_started_the_server_so_the_next_one_can_adopt_it(tmp_path: Path) -> None:
    journal = Journal(None, origin="starting")
    journal.record.server = Server(pid=4242, start_time=1, started="t")
    ctx = RunContext(settings=Settings(home=tmp_path))
    journal.begin(DEFINITION, ctx.settings, ctx)
    for state in FLOW:
        journal.enter(state)
        journal.leave(StepOutcome.SKIPPED if state in ("port_check", "starting") else StepOutcome.OK)
    assert [step.state for step in journal.record.history if step.started_server] == ["starting"]
    assert plan_adoption(journal.record, DEFINITION) is not None
    assert plan_resume(journal.record, DEFINITION, alive=False).start == "loading"  # rebooted: start it again


def test_a_failure_message_quoting_the_token_is_recorded_without_it(tmp_path: Path) -> None:
    from provisioner.errors import StepFailed
    from provisioner.output import redact
    from provisioner.secret import Secret

    redact.add(Secret("tok-recorded-nowhere-0123456789"))
    journal = Journal(None)
    ctx = RunContext(settings=Settings(home=tmp_path))
    journal.begin(DEFINITION, ctx.settings, ctx)
    journal.enter("verifying")
    journal.leave(StepOutcome.FAILED, StepFailed("failed_to_start", "log: token tok-recorded-nowhere-0123456789"))
    assert "tok-recorded-nowhere" not in json.dumps(journal.record.to_json())
    assert journal.record.failure is not None and journal.record.failure.message == "log: token ***"
