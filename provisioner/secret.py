"""The secrets a run holds: the token, and the platform's signing key. Neither shows itself in a repr, a log line or
a dump; the key lives in a buffer of its own that is wiped where it must not stay."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from provisioner import files

TOKEN_ENV = "JUPYTER_TOKEN"  # noqa: S105 - the variable's name, not a token


class Secret:
    """The token. Its repr and str never show the value, so it cannot leak through a log line or a dump."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def sign(body: bytes, key: bytes) -> str:
    """The signature header's value: HMAC-SHA256 of the exact body."""
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


class SigningKey:
    """The platform's key, in a buffer of its own that is wiped where it must not stay (the account's worker)."""

    __slots__ = ("_buffer", "_length")

    def __init__(self, buffer: bytearray, length: int) -> None:
        self._buffer = buffer
        self._length = length

    def sign(self, body: bytes) -> str:
        if not self._length:
            raise RuntimeError("the signing key was wiped")
        return sign(body, bytes(memoryview(self._buffer)[: self._length]))

    def keep(self, path: Path) -> None:
        """Write the key to `path`, 0600 (provisioner.boot: root keeps it for the callbacks of later boots)."""
        files.write_private(path, bytes(memoryview(self._buffer)[: self._length]))

    def wipe(self) -> None:
        self._buffer[:] = bytes(len(self._buffer))
        self._length = 0

    def __repr__(self) -> str:
        return "SigningKey('***')"

    __str__ = __repr__
