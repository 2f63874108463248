"""The run's secrets: neither the token nor the platform's key shows itself; the key signs, is wiped, is kept."""

from __future__ import annotations

import hashlib
import hmac
import stat
from pathlib import Path

import pytest

from provisioner.secret import Secret, SigningKey, sign

VALUE = "a-token-of-many-characters"
KEY = b"k" * 32


def test_a_secret_shows_no_value_in_its_repr_or_text() -> None:
    secret = Secret(VALUE)
    for shown in (repr(secret), str(secret), f"{secret}", str([secret]), str({"token": secret})):
        assert VALUE not in shown
    assert secret.reveal() == VALUE


def test_two_secrets_of_one_value_are_equal_and_hash_alike() -> None:
    assert Secret(VALUE) == Secret(VALUE) and hash(Secret(VALUE)) == hash(Secret(VALUE))
    assert Secret(VALUE) != Secret(VALUE + "x") and Secret(VALUE) != VALUE


def test_the_signature_is_hmac_sha256_of_the_exact_body() -> None:
    body = b"status=init_started&timestamp=1"
    assert sign(body, KEY) == "sha256=" + hmac.new(KEY, body, hashlib.sha256).hexdigest()
    assert sign(body + b" ", KEY) != sign(body, KEY)


def test_a_key_signs_as_sign_does_until_it_is_wiped_and_then_refuses() -> None:
    buffer = bytearray(KEY + bytes(8))  # a buffer longer than the key, as read_key reads one
    key = SigningKey(buffer, len(KEY))
    assert key.sign(b"body") == sign(b"body", KEY)
    assert "k" * 8 not in repr(key) and "k" * 8 not in str(key)
    key.wipe()
    assert buffer == bytearray(len(KEY) + 8), "the key's bytes are gone from its buffer"
    with pytest.raises(RuntimeError):
        key.sign(b"body")


def test_a_kept_key_is_a_file_only_its_owner_can_read(tmp_path: Path) -> None:
    kept = tmp_path / "alice.key"
    SigningKey(bytearray(KEY + b"\n"), len(KEY)).keep(kept)
    assert kept.read_bytes() == KEY, "the key's own bytes, not its buffer's"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
