"""Every exit code of jupyter-init, in one table: one meaning per number, whichever verb exits with it.

Each verb's `--help` and the docs' table (docs/reference/exit-codes.md) are made from this table; a test holds the
docs to it. A run's failure reasons take their numbers from the definition's `[reasons]`, inside REASONS: the band is
the tool's, the numbers in it the definition's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum

VERBS = ("run", "resume", "state", "stop", "graph", "check", "boot")


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1
    USAGE = 2
    CONFIG = 3
    LOCKED = 4
    # `state`: the recorded run's status, for scripts (`ready` is OK).
    RUNNING = 20
    NEVER_RUN = 21
    FAILED = 22
    INTERRUPTED = 23
    STOPPED = 24
    GONE = 25
    MONITOR = 70  # sysexits' EX_SOFTWARE: root's monitor of the account's process failed
    OUTPUT = 74  # sysexits' EX_IOERR: stdout could not be written (a full disk)
    INTERRUPTED_BY_CTRL_C = 130  # 128 + SIGINT, as a shell reports it
    PIPE = 141  # 128 + SIGPIPE: stdout's reader went away (`jupyter-init state | head -1`)


REASONS = range(10, 20)  # a run's failure reasons; the definition numbers each
SIGNALS = 128  # 128 + N: a run ended by signal N


class Status(str, Enum):
    """What `state` says of the recorded run. Each has its own exit code, none of them one of the command's own
    errors: a script tells "the run failed" from "`state` could not say"."""

    READY = "ready"
    RUNNING = "running"
    NEVER_RUN = "never_run"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    STOPPED = "stopped"
    GONE = "gone"

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK if self is Status.READY else ExitCode[self.name]


@dataclass(frozen=True)
class Row:
    code: str  # a number, or a range of them
    meaning: str
    verbs: tuple[str, ...]


# What success is, verb by verb: the one meaning of 0, said for each.
SUCCESS: Mapping[str, str] = {
    "run": "the server is ready",
    "resume": "the server is ready",
    "state": "status `ready`: the run ended ready and its server is up",
    "stop": "stopped, or nothing to stop",
    "graph": "drawn",
    "check": "valid",
    "boot": "the server is ready, or there was nothing to bring back",
}


def _every(*but: str) -> tuple[str, ...]:
    return tuple(verb for verb in VERBS if verb not in but)


_MEANINGS: Mapping[ExitCode, tuple[str, tuple[str, ...]]] = {
    ExitCode.OK: ("success", VERBS),
    ExitCode.INTERNAL: ("internal error (a bug: please report it)", VERBS),
    ExitCode.USAGE: (
        "usage error: a word, option or value the command cannot take, and nothing is started or stopped",
        VERBS,
    ),
    ExitCode.CONFIG: ("the definition (states.toml) is invalid or unreadable", VERBS),
    ExitCode.LOCKED: ("another run holds the output directory", ("run", "resume", "stop", "boot")),
    ExitCode.RUNNING: ("status `running`: a run holds the output directory now", ("state",)),
    ExitCode.NEVER_RUN: ("status `never_run`: no run is recorded", ("state",)),
    ExitCode.FAILED: ("status `failed`: the run failed (its `failure` says why)", ("state",)),
    ExitCode.INTERRUPTED: (
        "status `interrupted`: a signal or a kill ended the run (`resume` continues it)",
        ("state",),
    ),
    ExitCode.STOPPED: ("status `stopped`: `stop` stopped its server", ("state",)),
    ExitCode.GONE: ("status `gone`: the run ended ready, but its server is no longer running", ("state",)),
    ExitCode.MONITOR: (
        "as root for an account: the account's process had to be killed (it hung, stalled or asked too much), or "
        "root's monitor of it failed",
        _every("check"),
    ),
    ExitCode.OUTPUT: ("the output could not be written (a full disk)", VERBS),
    ExitCode.INTERRUPTED_BY_CTRL_C: ("interrupted by Ctrl-C (SIGINT)", VERBS),
    ExitCode.PIPE: ("the output's reader closed it early", VERBS),
}


def rows(reasons: Mapping[str, int]) -> list[Row]:
    """The whole table, by number: a row per code, one per failure reason of `reasons`, and the signals'."""
    table = [Row(str(int(code)), *_MEANINGS[code]) for code in ExitCode]
    for reason, number in sorted(reasons.items(), key=lambda item: item[1]):
        table.append(Row(str(number), f"the run failed: `{reason}`", ("run", "resume", "boot")))
    # A run turns SIGTERM, SIGINT and SIGHUP into this; any verb acting for an account as root exits so when the
    # account's process is ended by a signal; any verb at all, as a shell reports it, when killed itself.
    table.append(Row(f"{SIGNALS}+N", "ended by signal N (143: SIGTERM)", VERBS))
    return sorted(table, key=lambda row: int(row.code.split("+")[0]))


def epilog(verb: str, reasons: Mapping[str, int]) -> str:
    """A verb's `--help` epilog: the codes it can exit with."""
    codes = "; ".join(
        f"{row.code} {row.meaning}" + (f": {SUCCESS[verb]}" if row.code == "0" else "")
        for row in rows(reasons)
        if verb in row.verbs
    )
    note = (
        " The failure reasons are the shipped definition's; another --states numbers its own, from "
        f"{REASONS.start} to {REASONS.stop - 1}."
        if verb in ("run", "resume", "boot")
        else ""
    )
    return f"Exit codes: {codes}.{note}"


def markdown(reasons: Mapping[str, int]) -> str:
    """The docs' table of every code, generated: docs/reference/exit-codes.md holds it, and a test holds it here."""
    lines = ["| code | meaning | verbs |", "|---|---|---|"]
    for row in rows(reasons):
        verbs = "every verb" if row.verbs == VERBS else ", ".join(f"`{verb}`" for verb in row.verbs)
        meaning = row.meaning
        if row.code == "0":
            said: dict[str, list[str]] = {}
            for verb, what in SUCCESS.items():
                said.setdefault(what, []).append(f"`{verb}`")
            meaning += ": " + "; ".join(f"{', '.join(verbs)}: {what}" for what, verbs in said.items())
        lines.append(f"| {row.code} | {meaning} | {verbs} |")
    return "\n".join(lines) + "\n"
