"""The platform's signing key as the tests make it: its bytes, and a file holding them, 0600."""

from __future__ import annotations

from pathlib import Path

KEY = ("platform-key-" + "7f3a9c2e41" * 4).encode()  # distinctive, so that finding it in memory means something


def key_file(directory: Path, content: bytes = KEY + b"\n") -> Path:
    path = directory / "signing-key"
    path.write_bytes(content)
    path.chmod(0o600)
    return path
