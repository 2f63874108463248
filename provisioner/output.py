"""What the provisioner prints: progress and warnings on stderr, every line passed through the token redactor."""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Iterable

from provisioner.errors import TOKEN_MIN
from provisioner.record import MASK, url_secrets
from provisioner.secret import Secret

PROG = "jupyter-init"  # the command's one name, which starts every line it prints
log = logging.getLogger("provisioner")


class Redactor:
    """Masks the token (and a callback URL's password) where it would be printed in text that leaves the process.

    A secret of TOKEN_MIN characters or more is masked wherever it appears: no text of ours holds one by chance. A
    shorter one (a token on a loopback bind, a URL's password) only where it stands as a word of its own, so that
    the token `init` leaves `init_started` and `jupyter-init` whole but masks `?token=init&` and `'init'`.
    """

    def __init__(self) -> None:
        self._patterns: dict[str, re.Pattern[str]] = {}

    def add(self, secret: Secret | None) -> None:
        value = secret.reveal() if secret is not None else ""
        if value and value not in self._patterns:
            pattern = re.escape(value)
            if len(value) < TOKEN_MIN:
                pattern = f"(?<![\\w-]){pattern}(?![\\w-])"
            self._patterns[value] = re.compile(pattern)

    def add_urls(self, urls: Iterable[str | None]) -> None:
        """A password or a key in a callback URL is masked wherever it would show."""
        for url in urls:
            for secret in url_secrets(url):
                self.add(Secret(secret))

    def clear(self) -> None:
        self._patterns.clear()

    def __call__(self, text: str) -> str:
        for pattern in self._patterns.values():
            text = pattern.sub(MASK, text)
        return text


redact = Redactor()

MESSAGE_MAX = 2000  # characters of one message: a 100 KB path an operator typed is not printed or sent whole


def bounded(text: str, limit: int = MESSAGE_MAX) -> str:
    """`text`, its middle left out past `limit` characters. Cut only after redaction: a token cut in two would be
    masked in neither half."""
    if len(text) <= limit:
        return text
    keep = limit // 2
    return f"{text[:keep]} … ({len(text) - 2 * keep} characters left out) … {text[-keep:]}"


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = bounded(redact(record.getMessage()))
        record.args = ()
        return True


def printable(text: str) -> str:
    """`text` with every character a terminal would act on (escape sequences, a carriage return) shown, not sent:
    some of what we print comes from files another account can write."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


class _Lines(logging.Formatter):
    """For people: `jupyter-init: [  1.23s] starting`, `jupyter-init: error: ...`."""

    def format(self, record: logging.LogRecord) -> str:
        event = getattr(record, "event", None)
        if event == "problem":  # one of a definition's problems, under the error line that counts them
            return f"  {printable(record.getMessage())}"
        prefix = "error: " if event == "error" else ""
        return f"{PROG}: {prefix}{printable(record.getMessage())}"


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


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that lets a signal's exception through: logging swallows errors raised while a line is
    written, and Interrupted (SIGTERM mid-line) must stop the run, not be printed and forgotten."""

    def handleError(self, record: logging.LogRecord) -> None:
        from provisioner.errors import Interrupted

        if isinstance(sys.exc_info()[1], Interrupted):
            raise  # noqa: PLE0704 - re-raises the exception being handled
        super().handleError(record)


class _Terminal(_Handler):
    """On a terminal: the same lines, and the state in progress ticks its elapsed time until the next event,
    so that a person watching a long step (Jupyter's start, a slow module) sees that it is alive."""

    TICK = 0.1

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self._ticking: tuple[str, float, float] | None = None  # (state, its elapsed time at entry, monotonic then)
        self._lock = threading.RLock()
        self._wake = threading.Event()
        threading.Thread(target=self._tick, name="progress", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock:
            self.stream.write("\r\033[K")  # the ticking line gives way to the event
            super().emit(record)
            event, state, elapsed = (getattr(record, key, None) for key in ("event", "state", "elapsed"))
            finished = event != "state" or getattr(record, "reason", None) is not None
            self._ticking = None if finished else (str(state), float(elapsed or 0), time.monotonic())

    def _tick(self) -> None:
        while not self._wake.wait(self.TICK):
            with self._lock:
                if self._ticking is not None:
                    state, elapsed, since = self._ticking
                    if time.monotonic() - since >= 0.5:  # only a step that takes a while
                        now = elapsed + time.monotonic() - since
                        self.stream.write(f"\r{PROG}: [{now:6.2f}s] {state} …")
                        self.stream.flush()


def setup(json_log: bool = False) -> None:
    """Send the provisioner's log to stderr: one line per event, for people or (json_log) for machines."""
    terminal = not json_log and sys.stderr.isatty()
    handler: logging.StreamHandler = _Terminal() if terminal else _Handler(sys.stderr)  # type: ignore[type-arg]
    handler.setFormatter(_Json() if json_log else _Lines())
    handler.addFilter(_RedactingFilter())
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False


def after_fork() -> None:
    """In a forked child: a handler of its own (the parent's ticking thread, and any lock it held, did not come)."""
    setup(json_log=any(isinstance(handler.formatter, _Json) for handler in log.handlers))


def error(message: str) -> None:
    """The one line a failure of the command itself prints (the run's own failures are state events)."""
    log.error("%s", message, extra={"event": "error"})
