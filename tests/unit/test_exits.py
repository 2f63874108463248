"""One table of exit codes: one meaning per number, whichever verb exits with it."""

from __future__ import annotations

import re
import signal

from provisioner import exits
from provisioner.exits import REASONS, SIGNALS, ExitCode, Status
from tests.helpers.definitions import shipped_reasons


def test_no_number_has_two_names_and_none_lies_in_the_failure_band() -> None:
    # IntEnum makes a second name for a number an alias silently: count the names.
    assert len(ExitCode.__members__) == len({int(code) for code in ExitCode})
    assert not {int(code) for code in ExitCode} & set(REASONS)
    # A help epilog separates the codes with `;`: a meaning holds none.
    assert not [row for row in exits.rows(shipped_reasons()) if ";" in row.meaning]


def test_the_codes_past_128_are_the_signals_a_shell_would_report() -> None:
    assert ExitCode.INTERRUPTED_BY_CTRL_C == SIGNALS + signal.SIGINT
    assert ExitCode.PIPE == SIGNALS + signal.SIGPIPE


def test_each_status_of_state_has_a_code_of_its_own_that_names_it() -> None:
    assert len({status.exit_code for status in Status}) == len(Status)
    epilog = exits.epilog("state", {})
    for status in Status:
        assert re.search(rf"(?:: |; ){int(status.exit_code)} [^;]*`{status.value}`", epilog), status


def test_the_docs_table_has_one_row_per_number() -> None:
    reasons = shipped_reasons()
    table = exits.markdown(reasons)
    numbers = re.findall(r"^\| (\d+(?:\+N)?) \|", table, flags=re.M)
    assert len(numbers) == len(set(numbers)) == len(ExitCode) + len(reasons) + 1
    assert "| 10 | the run failed: `no_token` | `run`, `resume`, `boot` |" in table
