"""The state file, token file and lock."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import threading
from pathlib import Path

import pytest

from provisioner.errors import LockedError
from provisioner.record import SCHEMA, Delivery, Outcome, Record, StepOutcome
from provisioner.secret import Secret
from provisioner.store import STATE_FILE, Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "out")
    store.lock()
    return store


def test_a_lock_held_for_an_instant_is_waited_for_not_taken_for_a_run(tmp_path: Path) -> None:
    """`provisioner state` takes the lock for an instant to see whether a run holds it."""
    out = tmp_path / "out"
    out.mkdir()
    glance = os.open(out / "provisioner.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(glance, fcntl.LOCK_EX)
    threading.Timer(0.05, os.close, [glance]).start()
    store = Store(out)
    store.lock()  # no LockedError: the glance was over in 50 ms
    store.unlock()


def test_a_record_round_trips_privately(store: Store) -> None:
    store.save(Record(state="ready", outcome=Outcome.READY))
    loaded = store.load()
    assert loaded is not None and (loaded.state, loaded.outcome) == ("ready", Outcome.READY)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert [p.name for p in store.out.iterdir() if p.name.endswith(".tmp")] == []


def test_an_unparseable_file_is_moved_aside_and_reported(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    store.path.write_text("{ half a record")
    assert store.load() is None
    [aside] = [p for p in store.out.iterdir() if p.name.startswith(f"{STATE_FILE}.unreadable-")]
    assert aside.read_text() == "{ half a record"
    assert not store.path.exists()
    assert "not valid JSON" in caplog.text


def test_a_file_from_a_newer_version_is_moved_aside_not_overwritten(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    newer = json.dumps({"schema": SCHEMA + 1, "state": "from-the-future"})
    store.path.write_text(newer)
    assert store.load() is None
    assert any(p.read_text() == newer for p in store.out.iterdir() if ".unreadable-" in p.name)
    assert "written by a newer jupyter-init" in caplog.text


def test_a_reader_without_the_lock_leaves_a_bad_file_where_it_is(store: Store) -> None:
    store.path.write_text("not json")
    reader = Store(store.out)
    assert reader.load() is None
    assert store.path.read_text() == "not json"


def test_the_token_file_is_private_and_read_back(store: Store) -> None:
    store.save_token(Secret("s3cret-token-value"))
    assert store.load_token() == Secret("s3cret-token-value")
    assert stat.S_IMODE((store.out / "provisioner-token").stat().st_mode) == 0o600


def test_a_failed_save_is_reported_not_raised(store: Store) -> None:
    store.path.mkdir()  # a directory where the file must go: the rename fails
    assert "cannot write" in (store.save(Record()) or "")


def test_a_schema_1_record_is_read_with_its_callbacks_delivered_or_not(store: Store) -> None:
    """The file an earlier provisioner wrote: `delivered` true or false, no `queued`, no `delivery`."""
    callback = {"endpoint": "start", "status": "init_started", "reason": None, "fields": {"status": "init_started"}}
    store.path.write_text(
        json.dumps(
            {
                "schema": 1,
                "state": "ready",
                "outcome": "ready",
                "history": [{"state": "ready", "entered": "t", "outcome": "ok", "duration": 0.1}],
                "callbacks": [
                    {**callback, "delivered": True},
                    {**callback, "endpoint": "complete", "delivered": False},
                ],
            }
        )
    )
    record = store.load()
    assert record is not None
    assert [c.delivery for c in record.callbacks] == [Delivery.DELIVERED, Delivery.UNDELIVERED]
    assert record.history[0].outcome is StepOutcome.OK
    store.save(record)
    assert json.loads(store.path.read_text())["schema"] == SCHEMA == 2


def test_a_record_too_large_to_read_is_moved_aside_not_overwritten(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    huge = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    store.path.write_bytes(huge)
    assert store.load() is None
    [aside] = [p for p in store.out.iterdir() if p.name.startswith(f"{STATE_FILE}.unreadable-")]
    assert aside.read_bytes() == huge
    assert "cannot read it" in caplog.text
    store.save(Record(state="idle"))
    assert aside.read_bytes() == huge


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"outcome": "triumphant"}, "outcome is not one of"),
        ({"history": [{"state": "ready", "outcome": "ok", "duration": -1}]}, "duration is not a number of seconds"),
        ({"history": [{"outcome": "ok"}]}, "history[0].state is missing"),
        ({"server": {"pid": True}}, "server.pid is not a whole number"),
        ({"server": {"pid": 0}}, "server.pid is not a process id"),
        ({"port": 70000}, "port is not a port"),
        ({"callbacks": [{"endpoint": "start", "fields": {"status": 1}}]}, "callbacks[0].fields are not text"),
        ({"callbacks": [{"endpoint": "start", "delivery": "maybe"}]}, "callbacks[0].delivery is not one of"),
        ({"settings": {"port": "eighty"}}, "a recorded setting is not what it must be"),
        ({"history": {}}, "history is not a list"),
    ],
)
def test_a_record_with_a_value_of_the_wrong_kind_is_set_aside_naming_it(
    store: Store, caplog: pytest.LogCaptureFixture, change: dict[str, object], problem: str
) -> None:
    store.path.write_text(json.dumps({"schema": SCHEMA, "state": "ready", **change}))
    assert store.load() is None
    assert problem in caplog.text
    assert not store.path.exists()


def test_the_lock_creates_a_private_directory_and_admits_one_holder(store: Store) -> None:
    assert stat.S_IMODE(store.out.stat().st_mode) == 0o700
    other = Store(store.out)
    with pytest.raises(LockedError, match=r"another jupyter-init run \(pid \d+\)"):
        other.lock()
    assert other.locked_by_another()
    store.unlock()
    other.lock()
    other.unlock()
