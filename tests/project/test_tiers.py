"""The tests' own layout: a test module for every module of the package, and tiers a marker selects.

docs/development.md shows the fast tier's command; this file runs it (collecting only: running the fast tier from
inside itself would never end).
"""

from __future__ import annotations

import ast
import shlex
import subprocess
import sys

from tests.helpers.constants import CHECKOUT

FAST = 'python3 -m pytest -m "not e2e"'
PACKAGE = CHECKOUT / "provisioner"
CODE = (ast.FunctionDef, ast.ClassDef)


def collected(command: str) -> list[str]:
    """The test ids `command` would run, collected in this checkout by this interpreter."""
    words = shlex.split(command)
    assert words[:3] == ["python3", "-m", "pytest"]
    listed = subprocess.run(
        [sys.executable, *words[1:], "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return [line for line in listed.splitlines() if "::" in line]


def test_every_module_of_the_package_has_a_test_module_of_its_name_in_a_tier() -> None:
    missing = []
    for module in sorted(PACKAGE.rglob("*.py")):
        relative = module.relative_to(PACKAGE)
        if relative.name == "__init__.py":
            if not any(isinstance(node, CODE) for node in ast.parse(module.read_text()).body):
                continue  # a package that is only its docstring (and the version): nothing to test
            relative = relative.parent.with_suffix(".py")  # a subpackage's own code: tests/TIER/test_actions.py
        name = relative.with_name(f"test_{relative.name}")
        if not any((CHECKOUT / "tests" / tier / name).is_file() for tier in ("unit", "e2e")):
            missing.append(str(name))
    assert missing == []


def test_the_fast_tier_is_everything_but_the_end_to_end_tests() -> None:
    fast = collected(FAST)
    assert len(fast) > 300, "the fast tier holds the unit and project tests"
    assert [test for test in fast if not test.startswith(("tests/unit/", "tests/project/"))] == []
    everything = collected("python3 -m pytest")
    assert sorted(set(everything) - set(fast)) == sorted(test for test in everything if test.startswith("tests/e2e/"))


def test_a_fixture_that_makes_an_account_marks_the_tests_that_use_it() -> None:
    accounts = collected('python3 -m pytest -m "account"')
    # The researcher's fixture, the other account's, and the fixture built on the researcher's (user).
    assert any(test.startswith("tests/e2e/test_user.py::") for test in accounts)
    assert any("test_page.py::TestAgainstAnotherAccountOnThePort::" in test for test in accounts)
    assert any(test.startswith("tests/e2e/test_boot.py::") for test in accounts)
    assert [test for test in accounts if not test.startswith("tests/e2e/")] == []
    assert not any("test_the_boot_unit_passes_systemd_analyze_verify" in test for test in accounts)
