"""The state file, token file and lock."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from provisioner.errors import LockedError
from provisioner.settings import Secret
from provisioner.store import SCHEMA, STATE_FILE, Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "out")
    store.lock()
    return store


def test_the_lock_creates_a_private_directory_and_admits_one_holder(store: Store) -> None:
    assert stat.S_IMODE(store.out.stat().st_mode) == 0o700
    other = Store(store.out)
    with pytest.raises(LockedError, match=r"another provisioner run \(pid \d+\)"):
        other.lock()
    assert other.locked_by_another()
    store.unlock()
    other.lock()
    other.unlock()


def test_a_record_round_trips_privately(store: Store) -> None:
    store.save({"schema": SCHEMA, "state": "ready"})
    assert store.load() == {"schema": SCHEMA, "state": "ready"}
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
    assert "written by a newer provisioner" in caplog.text


def test_a_reader_without_the_lock_leaves_a_bad_file_where_it_is(store: Store) -> None:
    store.path.write_text("not json")
    reader = Store(store.out)
    assert reader.load() is None
    assert store.path.read_text() == "not json"


def test_the_token_file_is_private_and_read_back(store: Store) -> None:
    store.save_token(Secret("s3cret-token-value"))
    assert store.load_token() == Secret("s3cret-token-value")
    assert stat.S_IMODE((store.out / "provisioner-token").stat().st_mode) == 0o600


def test_a_failed_save_is_reported_not_raised(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    store.path.mkdir()  # a directory where the file must go: the rename fails
    store.save({"schema": SCHEMA})
    assert "cannot write" in caplog.text
