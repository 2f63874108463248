"""The checks of a definition's states and transitions as a graph (provisioner.flow), as the loader reports them."""

from __future__ import annotations

from typing import Any

import pytest

from provisioner import actions
from provisioner import definition as definitions
from provisioner.errors import ConfigError, Problem
from provisioner.settings import DEFINITION_SETTINGS
from tests.helpers.definitions import shipped_definition


def problems(data: dict[str, Any]) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        definitions.parse(data, actions.reasons(), DEFINITION_SETTINGS, source="test.toml")
    return list(caught.value.problems)


class TestValidation:
    def test_an_action_reason_without_a_transition_is_refused(self) -> None:
        data = shipped_definition()
        data["transitions"] = [t for t in data["transitions"] if t["trigger"] != "jupyter_not_found"]
        assert any("can fail with 'jupyter_not_found'" in p.message for p in problems(data))

    def test_an_unreachable_state_is_refused(self) -> None:
        data = shipped_definition()
        data["states"].append({"name": "limbo"})
        data["transitions"].append({"trigger": "ok", "source": "limbo", "dest": "ready"})
        assert Problem("states[8]", "state 'limbo' cannot be reached from 'idle'") in problems(data)

    def test_a_problems_index_is_the_states_place_in_the_file(self) -> None:
        # An invalid state earlier in the file is left out of the machine, but not out of the count.
        data = shipped_definition()
        data["states"].insert(1, {"name": "Not A Name"})
        data["states"].append({"name": "limbo"})
        data["transitions"].append({"trigger": "ok", "source": "limbo", "dest": "ready"})
        found = problems(data)
        assert Problem("states[1].name", "a state name is lower case letters, digits and _") in found
        assert Problem("states[9]", "state 'limbo' cannot be reached from 'idle'") in found

    def test_a_state_with_no_way_forward_is_refused(self) -> None:
        data = shipped_definition()
        data["transitions"] = [
            t for t in data["transitions"] if not (t["trigger"] == "ok" and t["source"] == "starting")
        ]
        assert Problem("states[4]", "state 'starting' is not final and has no 'ok' transition") in problems(data)

    def test_a_machine_that_can_go_round_forever_is_refused(self) -> None:
        data = shipped_definition()
        data["transitions"].append({"trigger": "port_in_use", "source": "starting", "dest": "loading"})
        loop = "a run could go round forever: loading -> port_check -> starting -> loading"
        assert problems(data) == [Problem("states[2]", loop)]
        alone = {"schema": 1, "initial": "idle", "callbacks": data["callbacks"], "reasons": {}}
        alone |= {"states": [{"name": "idle"}], "transitions": [{"trigger": "ok", "source": "idle", "dest": "idle"}]}
        assert problems(alone) == [Problem("states[0]", "a run could go round forever: idle -> idle")]
