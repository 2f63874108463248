"""What each verb does, given typed arguments; cli.py only turns the command line into these calls."""

from __future__ import annotations

from pathlib import Path

from provisioner import actions
from provisioner import definition as definitions
from provisioner.context import INFO_TXT, RunContext, log
from provisioner.definition import Definition
from provisioner.machine import Runner
from provisioner.output import redact
from provisioner.reporter import Reporter
from provisioner.settings import SETTING_PARSERS, Settings


def load_definition(path: Path | None) -> Definition:
    """The definition at `path`, or the one shipped with the package; validated whole."""
    return definitions.load(path or definitions.default_path(), actions.reasons(), SETTING_PARSERS)


def run(settings: Settings, definition: Definition, started: float) -> int:
    """Provision a server; return the exit code of the state the machine ends in."""
    redact.add(settings.token)
    ctx = RunContext(settings=settings)
    reporter = Reporter(definition.callbacks, redact)
    try:
        outcome = Runner(definition, ctx, reporter, started).run()
    finally:
        reporter.close(definition.callbacks.deadline)
    if outcome.exit_code == 0:
        log.info("connection details: %s", ctx.out / INFO_TXT)
    return outcome.exit_code


def check(path: Path | None) -> int:
    """Validate a definition; ConfigError lists every problem."""
    definition = load_definition(path)
    states = len(definition.states)
    print(f"{definition.source}: ok ({states} states, {len(definition.transitions)} transitions)")
    return 0
