"""The provisioner's one exception family.

    ProvisionError               base; carries the exit code; cli.main() turns it into one line on stderr
    ├── UsageError               bad command line (exit 2): nothing started, nothing sent
    ├── ConfigError              states.toml is not a valid definition (exit 3); carries every problem found
    ├── LockedError              another run holds the output directory (exit 4)
    ├── Interrupted              SIGTERM, SIGINT or SIGHUP arrived mid-run (exit 128 + the signal's number)
    └── StepFailed               an action failed with a reason from states.toml; the machine fires that reason

Messages never hold the token: they are written for the user's terminal and the platform's callback alike.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass

from provisioner.exits import SIGNALS, ExitCode

# The shortest token a server listening beyond loopback may have. A value this long on a command line could be the
# token given in the wrong place: it is never quoted in a message.
TOKEN_MIN = 16


def shown(value: object, longest: int = 30) -> str:
    """A value quoted for a message, whole or not at all: the redactor masks the whole token, not a part of it, and a
    hostile file may hold a megabyte there. Values of options: `shown_option`."""
    text = str(value)
    return repr(value) if len(text) <= longest else f"(a value of {len(text)} characters)"


def shown_option(value: object) -> str:
    """An option's value quoted for a message only when it is too short to be a token: a mistyped command line may
    hold the token in the wrong place, and the redactor knows only the token it was given."""
    return shown(value, TOKEN_MIN - 1)


def shown_path(path: object) -> str:
    """A path option's value quoted for a message when it reads as a path (absolute, ./ ../ ~, or too short to be a
    token), as an operator needs to see which file it was; otherwise not at all: a token given there by mistake."""
    label = path_label(path)
    return repr(label) if label == str(path) else label


def path_label(path: object) -> str:
    """`shown_path` unquoted: where a message names a file as its subject (`states.toml: not valid TOML`)."""
    text = str(path)
    # However long, a path is cut where every message is, in output.bounded, after the token is masked.
    if text.startswith(("/", "./", "../", "~")) or len(text) < TOKEN_MIN:
        return text
    return f"(a value of {len(text)} characters)"


class ProvisionError(Exception):
    """Base of every error the provisioner reports to its user."""

    exit_code: int = ExitCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(ProvisionError):
    """The command line asks for something impossible."""

    exit_code = ExitCode.USAGE


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition: where (`states[3].retry.wait`; empty for the file as a whole) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(ProvisionError):
    """The definition is invalid; `problems` holds every problem found, in the order of the file."""

    exit_code = ExitCode.CONFIG

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s): " + "; ".join(map(str, self.problems)))


class LockedError(ProvisionError):
    """Another jupyter-init run holds the output directory."""

    exit_code = ExitCode.LOCKED


class Interrupted(ProvisionError):
    """A signal asked the provisioner to stop; raised in the main thread wherever it was."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = SIGNALS + signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


class StepFailed(ProvisionError):
    """An action failed; `reason` names the failure transition and its exit code in states.toml.

    Its message is made one line here, whatever it quotes (a tool's stderr, a log's tail): every failure is built
    here, and its message becomes a callback's `message` field, the record's and a line on stderr. `detail` is what
    it quotes of the account's own (the server log's last lines): in those, not on the progress page, which anyone
    who can reach the port may read; `summary` is the message without it.
    """

    def __init__(self, reason: str, message: str, detail: str = "") -> None:
        self.summary = " ".join(message.split())
        super().__init__(" ".join(f"{message}{detail}".split()))
        self.reason = reason
