"""--help says what each verb does and every exit code it can end with, from the code and the definition."""

from __future__ import annotations

import re

import pytest

from provisioner import actions, exits
from provisioner import definition as definitions
from provisioner.settings import DEFINITION_SETTINGS, OPTIONS, Settings, shown_default
from tests.helpers.cli import VERBS, help_of


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


def test_the_defaults_in_run_help_are_the_settings_defaults() -> None:
    text = help_of("run")
    shown = [name for name in OPTIONS if Settings.__dataclass_fields__[name].default is not None]
    assert shown, "some settings have a default to show"
    for name in shown:
        assert f"default {shown_default(name)}" in text, name
