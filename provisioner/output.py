"""What the provisioner prints: progress and warnings on stderr, every line passed through the token redactor."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from provisioner.settings import Secret

MASK = "***"
log = logging.getLogger("provisioner")


class Redactor:
    """Replaces the token wherever it would appear in text that leaves the process."""

    def __init__(self) -> None:
        self._secrets: list[str] = []

    def add(self, secret: Secret | None) -> None:
        if secret is not None and secret.reveal() and secret.reveal() not in self._secrets:
            self._secrets.append(secret.reveal())

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text


redact = Redactor()


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = ()
        return True


def setup(quiet: bool = False) -> None:
    """Send the provisioner's log to stderr, one line per event, prefixed with the program's name."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("provisioner: %(message)s"))
    handler.addFilter(_RedactingFilter())
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False


def error(message: str) -> None:
    print(f"provisioner: error: {redact(message)}", file=sys.stderr)
