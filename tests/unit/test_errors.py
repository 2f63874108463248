from __future__ import annotations

from provisioner.errors import StepFailed


def test_a_failure_message_is_one_line_whatever_it_quotes() -> None:
    failed = StepFailed("failed_to_start", "jupyter-notebook exited; last lines:\n  Traceback\r\n\tboom\u2028end \n")
    assert failed.message == str(failed) == "jupyter-notebook exited; last lines: Traceback boom end"
    assert failed.reason == "failed_to_start"
