"""The server's certificate, in process: made under new names, never read through a FIFO or from a directory that is
not one, its validity read as it says. Serving it, pinned, end to end is tests/e2e/test_tls.py's."""

from __future__ import annotations

import os
import ssl
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from provisioner import tls
from tests.helpers.tls import made_certificate


def test_a_tls_directory_that_is_not_one_is_a_line_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / tls.TLS_DIR).write_text("planted")
    with pytest.raises(tls.TLSError, match="cannot make"):
        tls.self_signed(tmp_path, ["127.0.0.1"])


def test_each_certificate_is_made_under_new_names(tmp_path: Path) -> None:
    first = tls.self_signed(tmp_path, ["127.0.0.1"])
    second = tls.self_signed(tmp_path, ["127.0.0.1"])
    assert {first.certfile, first.keyfile}.isdisjoint({second.certfile, second.keyfile})
    assert tls.load(first.certfile, first.keyfile).fingerprint == first.fingerprint  # untouched by the second
    tls.forget_others(tmp_path, second)
    assert sorted(path.name for path in (tmp_path / tls.TLS_DIR).iterdir()) == sorted(
        [second.certfile.name, second.keyfile.name]
    )


def test_a_fifo_planted_as_the_key_fails_at_once_instead_of_blocking(tmp_path: Path) -> None:
    mine = tls.self_signed(tmp_path, ["127.0.0.1"])
    planted = tmp_path / "planted.key"
    os.mkfifo(planted)
    outcome: list[BaseException] = []

    def load() -> None:
        try:
            tls.load(mine.certfile, planted)
        except tls.TLSError as exc:
            outcome.append(exc)

    loading = threading.Thread(target=load)
    loading.start()
    loading.join(timeout=10)
    assert not loading.is_alive(), "tls.load is blocked opening the FIFO"
    [error] = outcome
    assert str(error) == f"cannot use {planted}: it is not a regular file"


@pytest.mark.parametrize(
    ("not_before", "not_after"),
    [
        (datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc), datetime(2049, 12, 31, 23, 59, 59, tzinfo=timezone.utc)),
        (datetime(1999, 6, 1, tzinfo=timezone.utc), datetime(2051, 2, 3, 4, 5, 6, tzinfo=timezone.utc)),  # 2050+: the
        (datetime(1950, 1, 1, tzinfo=timezone.utc), datetime(2100, 1, 1, tzinfo=timezone.utc)),  # long form of time
    ],
)
def test_the_validity_is_read_as_the_certificate_says(
    tmp_path: Path, not_before: datetime, not_after: datetime
) -> None:
    certfile, _ = made_certificate(tmp_path, not_before, not_after)
    assert tls.validity(ssl.PEM_cert_to_DER_cert(certfile.read_text())) == (not_before, not_after)
