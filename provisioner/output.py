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


class _Lines(logging.Formatter):
    """For people: `provisioner: [  1.23s] starting`, `provisioner: error: ...`."""

    def format(self, record: logging.LogRecord) -> str:
        event = getattr(record, "event", None)
        if event == "problem":  # one of a definition's problems, under the error line that counts them
            return f"  {record.getMessage()}"
        prefix = "error: " if event == "error" else ""
        return f"provisioner: {prefix}{record.getMessage()}"


class _Json(logging.Formatter):
    """For machines (--json-log): one JSON object per event."""

    FIELDS = ("state", "elapsed", "reason", "url", "pid")

    def format(self, record: logging.LogRecord) -> str:
        import json
        from datetime import datetime, timezone

        event = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": getattr(record, "event", "message"),
            "message": record.getMessage(),
        }
        event.update({key: getattr(record, key) for key in self.FIELDS if hasattr(record, key)})
        return json.dumps(event)


def setup(json_log: bool = False) -> None:
    """Send the provisioner's log to stderr: one line per event, for people or (json_log) for machines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Json() if json_log else _Lines())
    handler.addFilter(_RedactingFilter())
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False


def error(message: str) -> None:
    """The one line a failure of the command itself prints (the run's own failures are state events)."""
    log.error("%s", message, extra={"event": "error"})
