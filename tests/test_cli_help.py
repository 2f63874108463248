"""--help says what each verb does and every exit code it can end with, from the code and the definition."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from provisioner import actions, exits
from provisioner import definition as definitions
from provisioner.settings import DEFINITION_SETTINGS, OPTIONS, Settings, shown_default
from tests.helpers.cli import cli_env, help_text, run_cli

VERBS = ("run", "resume", "state", "stop", "graph", "check")


def help_of(verb: str) -> str:
    return " ".join(help_text(verb).split())  # argparse wraps lines wherever the terminal is narrow


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_a_description_of_its_own(verb: str) -> None:
    text = subprocess.run(
        [sys.executable, "-m", "provisioner", verb, "--help"], capture_output=True, text=True, check=True
    ).stdout
    usage, description, *_ = text.split("\n\n")  # argparse: usage, then the description, then the arguments
    assert usage.startswith(f"usage: jupyter-init {verb}")
    assert re.match(r"[A-Z].+\.$", " ".join(description.split())), description


@pytest.mark.parametrize("verb", VERBS)
def test_every_verbs_help_lists_its_exit_codes_from_the_one_table(verb: str) -> None:
    shipped = definitions.load(definitions.default_path(), actions.reasons(), DEFINITION_SETTINGS)
    text = help_of(verb)
    assert " ".join(exits.epilog(verb, shipped.reasons).split()) in text
    listed = dict(re.findall(r"(?:^|[:;]) (\d+) ([^;.]+)", text.split("Exit codes:")[1]))
    expected = {str(int(code)) for code, (_, verbs) in exits._MEANINGS.items() if verb in verbs}
    if verb in ("run", "resume"):
        assert shipped.reasons, "the shipped definition declares its failure reasons"
        expected |= {str(code) for code in shipped.reasons.values()}
        assert all(listed[str(code)] == f"the run failed: `{reason}`" for reason, code in shipped.reasons.items())
    assert set(listed) == expected


def test_every_option_has_help_and_graph_format_says_its_choices() -> None:
    for verb in VERBS:
        text = subprocess.run(
            [sys.executable, "-m", "provisioner", verb, "--help"], capture_output=True, text=True, check=True
        ).stdout
        lines = text.split("options:")[1].splitlines()
        # argparse puts an option's help after it on its line, or on the next line, further in.
        named = [index for index, line in enumerate(lines) if line.startswith("  -")]
        assert len(named) > 1
        bare = [
            lines[index]
            for index in named
            if not re.search(r"\S {2,}\S", lines[index].strip())
            and not (index + 1 < len(lines) and re.match(r" {5,}\S", lines[index + 1]))
        ]
        assert not bare, f"{verb}: options without help: {bare}"
    assert "mermaid (default" in help_of("graph")


def test_the_defaults_in_run_help_are_the_settings_defaults() -> None:
    text = help_of("run")
    shown = [name for name in OPTIONS if Settings.__dataclass_fields__[name].default is not None]
    assert shown, "some settings have a default to show"
    for name in shown:
        assert f"default {shown_default(name)}" in text, name


def test_stop_refuses_a_grace_that_is_not_a_time(reap: Path) -> None:
    for bad in ("nan", "inf", "-1", "soon"):
        run = run_cli(["stop", "--grace", bad], cli_env(reap))
        assert run.returncode == 2, run.stderr
        assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr


def test_a_reader_that_stops_early_ends_the_command_quietly(reap: Path) -> None:
    """`provisioner graph | head -1`: no traceback, and the shell's code for a closed pipe."""
    command = [sys.executable, "-m", "provisioner", "graph", "--format", "dot"]
    env = cli_env(reap)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()  # before the command writes: its first write finds no reader
        err = process.stderr.read().decode()
        code = process.wait()
    assert (code, err) == (141, "")


def test_an_output_that_cannot_be_written_is_one_line_and_74(reap: Path) -> None:
    with open("/dev/full", "w") as full:
        run = subprocess.run(
            [sys.executable, "-m", "provisioner", "state", "--json"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(reap),
            check=False,
        )
    assert (run.returncode, run.stderr) == (
        74,
        "jupyter-init: error: cannot write the output: No space left on device\n",
    )


def test_stop_takes_its_grace_in_ascii_digits(reap: Path) -> None:
    run = run_cli(["stop", "--grace", "٣"], cli_env(reap))
    assert run.returncode == 2 and "is not a number of seconds" in run.stderr
