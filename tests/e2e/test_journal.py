"""The journal: the record kept as a run goes, saved whole whatever thread saves it, without a secret."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from provisioner.context import RunContext
from provisioner.journal import Journal
from provisioner.record import Record, StepOutcome
from provisioner.settings import Settings
from tests.helpers.definitions import DEFINITION


class _WatchfulStore:
    """Stands in for the state file: takes its time to write, and notes any change to the record meanwhile."""

    def __init__(self) -> None:
        self.saves = 0
        self.changed_while_saving = 0

    def save(self, record: Record) -> None:
        before = json.dumps(record.to_json())
        time.sleep(0.002)  # a write and an fsync
        self.changed_while_saving += json.dumps(record.to_json()) != before
        self.saves += 1


def test_a_save_from_a_callback_thread_never_sees_the_record_change_under_it(tmp_path: Path) -> None:
    """Callbacks finish, and save the record, in the reporter's threads while the machine changes it."""
    store = _WatchfulStore()
    journal = Journal(store)  # type: ignore[arg-type]
    ctx = RunContext(settings=Settings(home=tmp_path))
    journal.begin(DEFINITION, ctx.settings, ctx)
    done = threading.Event()

    def save_again_and_again() -> None:
        while not done.is_set():
            journal.save()

    saver = threading.Thread(target=save_again_and_again)
    saver.start()
    for _ in range(100):
        journal.enter("loading")
        journal.leave(StepOutcome.OK)
    done.set()
    saver.join()
    assert store.saves > 200
    assert store.changed_while_saving == 0
