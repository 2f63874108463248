"""A record read back is data another account may have written: every value is checked, and the first that is not
what it must be is named."""

from __future__ import annotations

from typing import Any

import pytest

from provisioner.record import SCHEMA, Outcome
from provisioner.recordread import RecordError, parse


def read(**fields: Any) -> object:
    return parse({"schema": SCHEMA, **fields}, lambda settings: True)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"port": True}, "port is not a whole number"),  # exact kinds: true is no int
        ({"port": 70000}, "port is not a port"),
        ({"outcome": "hacked"}, "outcome is not one of running, ready, failed, stopped, interrupted"),
        ({"history": {"state": "idle"}}, "history is not a list"),
        ({"history": ["idle"]}, "history[0] is not an object"),
        ({"server": {"pid": 1 << 30, "port": 8008}}, "server.pid"),
        ({"callbacks": [{"endpoint": "start", "status": "init_started", "delivery": "lost"}]}, "callbacks[0].delivery"),
    ],
)
def test_a_value_of_the_wrong_kind_or_range_is_named(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(RecordError) as caught:
        read(**fields)
    assert named in caught.value.problem


def test_a_record_of_no_schema_or_a_newer_one_is_not_read() -> None:
    with pytest.raises(RecordError, match="no schema version"):
        parse({"schema": 0}, lambda settings: True)
    with pytest.raises(RecordError, match=f"newer jupyter-init \\(schema {SCHEMA + 1}; this one reads {SCHEMA}\\)"):
        parse({"schema": SCHEMA + 1}, lambda settings: True)
    with pytest.raises(RecordError, match="the record is not an object"):
        parse([SCHEMA], lambda settings: True)


def test_settings_the_caller_refuses_make_the_record_unreadable() -> None:
    with pytest.raises(RecordError, match="a recorded setting is not what it must be"):
        parse({"schema": SCHEMA, "settings": {"port": "x"}}, lambda settings: False)


def test_what_a_record_leaves_out_takes_its_default() -> None:
    record = parse({"schema": SCHEMA}, lambda settings: True)
    assert (record.outcome, record.history, record.server, record.settings) == (Outcome.RUNNING, [], None, {})
