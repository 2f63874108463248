"""Files read and written whole or not at all, and never a FIFO, a device or a link taken for a file."""

from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path

import pytest

from provisioner import files


def test_a_private_file_is_written_whole_0600_and_replaces_a_link_rather_than_writing_through_it(
    tmp_path: Path,
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("not to be touched")
    planted = tmp_path / "info.txt"
    planted.symlink_to(elsewhere)
    files.write_private(planted, "the new text")
    assert not planted.is_symlink() and planted.read_text() == "the new text"
    assert stat.S_IMODE(planted.stat().st_mode) == 0o600
    assert elsewhere.read_text() == "not to be touched"
    assert [path.name for path in tmp_path.iterdir() if path.name.endswith(".tmp")] == [], "no temporary left"


def test_a_fifo_in_a_files_place_fails_at_once_instead_of_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "state.json"
    os.mkfifo(fifo)
    finished = threading.Event()

    def read() -> None:
        with pytest.raises(OSError, match="not a regular file"):
            files.read_regular(fifo)
        finished.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert finished.wait(10), "reading a FIFO no one writes to must not block"
    with pytest.raises(OSError) as caught:
        files.open_regular(fifo, os.O_WRONLY)
    assert caught.value.errno == errno.ENXIO


def test_a_link_is_refused_unless_followed_on_purpose(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("text")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(OSError, match="symbolic link"):
        files.read_regular(link)
    assert files.read_regular(link, follow=True) == b"text"


def test_a_file_larger_than_the_limit_is_not_read(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"x" * 101)
    assert files.read_regular(big, 101) == b"x" * 101
    with pytest.raises(OSError, match="larger than 100 bytes"):
        files.read_regular(big, 100)


def test_the_tail_is_the_last_non_empty_lines_and_nothing_for_what_is_not_a_file(tmp_path: Path) -> None:
    log = tmp_path / "jupyter.log"
    log.write_text("one\n\ntwo\nthree\n\n")
    assert files.tail(log, lines=2) == ["two", "three"]
    assert files.tail(tmp_path / "missing") == []
    os.mkfifo(tmp_path / "fifo")
    assert files.tail(tmp_path / "fifo") == []
