"""How the tests are run, as the README and CI tell it: one script installs their prerequisites, and the README
says what they do to the machine."""

from __future__ import annotations

import re

from tests.conftest import CHECKOUT, PREREQUISITES

TEST_COMMAND = "pip install -e '.[test]' && python3 -m pytest"
RUNS_THE_SCRIPT = re.compile(rf"^(sudo )?bash {re.escape(PREREQUISITES)}$")
INSTALLS = re.compile(r"(^|[\s;&|(])(apt-get|apt|dpkg|dpkg-deb) ")  # any package command at all


def shell_lines(text: str) -> list[str]:
    """The commands of a shell script, without comments or blank lines."""
    lines = (line.split(" #", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def readme_bash_blocks() -> list[list[str]]:
    readme = (CHECKOUT / "README.md").read_text()
    return [shell_lines(block) for block in re.findall(r"^```bash\n(.*?)^```$", readme, re.MULTILINE | re.DOTALL)]


def test_ci_installs_the_prerequisites_with_the_script_and_nothing_of_its_own() -> None:
    ci = shell_lines((CHECKOUT / ".ci" / "run").read_text())
    assert [line for line in ci if RUNS_THE_SCRIPT.match(line)], ci
    assert not [line for line in ci if INSTALLS.search(line)]


def test_the_readme_runs_the_script_right_before_the_test_command() -> None:
    # One command, as a newcomer copies it, and the very line .ci/run runs.
    [block] = [block for block in readme_bash_blocks() if any(TEST_COMMAND in line for line in block)]
    assert block == [f"bash {PREREQUISITES} && {TEST_COMMAND}"]
    assert f'test_command="{block[0]}"' in (CHECKOUT / ".ci" / "run").read_text()


def test_the_script_is_what_installs_the_packages() -> None:
    script = shell_lines((CHECKOUT / PREREQUISITES).read_text())
    assert [line for line in script if line.startswith("apt-get install ")]
    assert [line for line in script if line.startswith("dpkg-deb -x ")]


# Programs that change the machine rather than a test's own files: the README must say what the suite does with each.
MACHINE_CHANGING = ("useradd", "userdel", "groupadd", "groupdel", "usermod", "mount", "umount", "unshare", "setfacl")


def test_the_readme_names_every_program_the_suite_changes_the_machine_with() -> None:
    sources = "\n".join(path.read_text() for path in (CHECKOUT / "tests").rglob("*.py"))
    used = [program for program in MACHINE_CHANGING if re.search(rf'\[\s*"{program}"', sources)]
    assert "useradd" in used  # the search finds commands as the tests write them
    readme = (CHECKOUT / "README.md").read_text()
    section = re.search(r"^What the suite does to the machine.*?(?=^## )", readme, re.MULTILINE | re.DOTALL)
    assert section is not None
    assert [program for program in used if f"`{program}" not in section.group()] == []
