"""How the tests are run, as CI does it: one script installs their prerequisites, and nothing else installs packages.
(What the README and docs say of it: tests/project/test_docs.py.)"""

from __future__ import annotations

import re

from tests.helpers.constants import CHECKOUT, PREREQUISITES

RUNS_THE_SCRIPT = re.compile(rf"^(sudo )?bash {re.escape(PREREQUISITES)}$")


INSTALLS = re.compile(r"(^|[\s;&|(])(apt-get|apt|dpkg|dpkg-deb) ")  # any package command at all


def shell_lines(text: str) -> list[str]:
    """The commands of a shell script, without comments or blank lines."""
    lines = (line.split(" #", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test_ci_installs_the_prerequisites_with_the_script_and_nothing_of_its_own() -> None:
    ci = shell_lines((CHECKOUT / ".ci" / "run").read_text())
    assert [line for line in ci if RUNS_THE_SCRIPT.match(line)], ci
    assert not [line for line in ci if INSTALLS.search(line)]


def test_the_script_is_what_installs_the_packages() -> None:
    script = shell_lines((CHECKOUT / PREREQUISITES).read_text())
    assert [line for line in script if line.startswith("apt-get install ")]
    assert [line for line in script if line.startswith("dpkg-deb -x ")]
