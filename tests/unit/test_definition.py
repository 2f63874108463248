"""states.toml: the shipped definition's contract with the code, and the validator that guards every definition."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest

from provisioner import actions
from provisioner import definition as definitions
from provisioner.errors import ConfigError, Problem
from provisioner.settings import DEFINITION_SETTINGS
from tests.helpers.constants import CHECKOUT

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


TOP_LEVEL = CHECKOUT / "states.toml"


def shipped_data() -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads(TOP_LEVEL.read_text())
    return data


def parse(data: dict[str, Any]) -> definitions.Definition:
    return definitions.parse(data, actions.reasons(), DEFINITION_SETTINGS, source="test.toml")


def problems(data: dict[str, Any]) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        parse(data)
    return list(caught.value.problems)


def paths(data: dict[str, Any]) -> list[str]:
    return [problem.path for problem in problems(data)]


def state_index(data: dict[str, Any], name: str) -> int:
    return next(index for index, state in enumerate(data["states"]) if state["name"] == name)


class TestShippedDefinition:
    def test_the_package_ships_the_top_level_states_toml(self) -> None:
        assert definitions.default_path().read_bytes() == TOP_LEVEL.read_bytes()

    def test_it_declares_the_spec_states_in_order(self) -> None:
        names = [state.name for state in parse(shipped_data()).states]
        assert names == ["idle", "validating", "loading", "port_check", "starting", "verifying", "ready", "failed"]

    def test_every_declared_action_exists_and_every_action_is_declared(self) -> None:
        declared = {state.action for state in parse(shipped_data()).states if state.action}
        assert declared == set(actions.registry())

    def test_every_action_has_run_and_reasons_with_exit_codes(self) -> None:
        definition = parse(shipped_data())
        for action in actions.registry().values():
            assert callable(action.run)
            for reason in action.reasons:
                assert definition.exit_code(reason) not in (0, 1, 2, 3, 4)

    def test_the_spec_reasons_go_to_the_spec_urls(self) -> None:
        definition = parse(shipped_data())
        sent = {
            (notify.status, notify.reason): notify.endpoint
            for transition in definition.transitions
            for notify in transition.notify
        }
        assert sent[("init_started", None)] == "start"
        assert sent[("init_completed", None)] == "complete"
        assert sent[("failed", "no_token")] == "start"
        assert sent[("failed", "port_in_use")] == "complete"
        assert sent[("failed", "failed_to_start")] == "complete"

    def test_every_working_state_can_reach_failed(self) -> None:
        definition = parse(shipped_data())
        for state in definition.states:
            if state.action and state.name != "failed":
                failures = [t for t in definition.transitions if state.name in t.sources and t.dest == "failed"]
                assert failures, state.name

    def test_exit_codes_are_distinct(self) -> None:
        codes = list(parse(shipped_data()).reasons.values())
        assert len(codes) == len(set(codes))


class TestValidation:
    def test_every_problem_is_reported_at_once_with_its_path(self) -> None:
        data = shipped_data()
        data["states"][state_index(data, "loading")]["action"] = "teleporting"
        data["states"][state_index(data, "port_check")]["retry"]["deadline"] = 0
        data["transitions"][0]["dest"] = "nowhere"
        found = problems(data)
        known = ", ".join(sorted(actions.reasons()))
        assert Problem("states[2].action", f"unknown action 'teleporting' (known: {known})") in found
        assert Problem("states[3].retry.deadline", "must be more than 0 and at most 86400") in found
        assert Problem("transitions[0].dest", "'nowhere' is not a declared state") in found
        assert len(found) > 3  # and what follows from them: states that cannot be reached

    def test_a_failure_reason_without_an_exit_code_is_refused(self) -> None:
        data = shipped_data()
        del data["reasons"]["port_in_use"]
        found = problems(data)
        assert Problem("states[3].retry.on", "'port_in_use' is not a declared reason") in found

    def test_unknown_keys_and_bad_types_are_refused(self) -> None:
        data = shipped_data()
        data["states"][0]["colour"] = "blue"
        data["callbacks"]["attempts"] = "many"
        found = problems(data)
        assert Problem("states[0].colour", "unknown key") in found
        assert Problem("callbacks.attempts", "must be a whole number") in found

    def test_a_name_with_a_line_end_is_refused_whole(self) -> None:
        # `re.match` with `$` lets "loading\n" through: a name is matched whole.
        data = shipped_data()
        data["states"][2]["name"] = "loading\n"
        assert "states[2].name" in paths(data)
        data = shipped_data()
        data["reasons"]["no_token\n"] = data["reasons"].pop("no_token")
        assert any(problem.path == "reasons.no_token\n" for problem in problems(data))

    def test_exit_codes_outside_the_failure_band_and_repeated_ones_are_refused(self) -> None:
        band = (
            "exit code must be a whole number from 10 to 19 (the band of a run's failures; every other code has a "
            "meaning of its own)"
        )
        # 2 is a usage error, 22 `state`'s `failed`, 70 the monitor's: each number means one thing across the tool.
        for taken in (2, 9, 20, 22, 70, 130):
            data = shipped_data()
            data["reasons"]["no_token"] = taken
            assert problems(data)[0] == Problem("reasons.no_token", band), taken
        data = shipped_data()
        data["reasons"]["no_token"] = 19  # the band's edges are the definition's
        data["reasons"]["module_load_failed"] = 10
        assert parse(data).reasons["no_token"] == 19
        data["reasons"]["port_in_use"] = data["reasons"]["failed_to_start"]
        assert problems(data) == [Problem("reasons.failed_to_start", "exit code 14 is already used by 'port_in_use'")]

    def test_settings_are_checked_by_the_same_rules_as_the_command_line(self) -> None:
        data = shipped_data()
        data["settings"]["port"] = 70000
        data["settings"]["colour"] = "blue"
        found = problems(data)
        assert Problem("settings.port", "70000 is out of range (1-65535 or 'auto')") in found
        assert [p.path for p in found] == ["settings.port", "settings.colour"]

    def test_settings_are_judged_by_their_form_not_by_this_machine(self) -> None:
        data = shipped_data()
        data["settings"] = {"user": "no-such-account-here", "notebook_dir": "/no/such/directory", "port": "auto"}
        assert parse(data).settings["user"] == "no-such-account-here"
        data["settings"] = {"user": 1000, "module": ["JupyterNotebook"], "timeout": "60", "port": True}
        assert [p.path for p in problems(data)] == [
            "settings.user",
            "settings.module",
            "settings.timeout",
            "settings.port",
        ]

    @pytest.mark.parametrize("bad", [float("inf"), float("nan"), -1.0, 0, 10**400, 86401])
    @pytest.mark.parametrize("where", ["callbacks.timeout", "callbacks.deadline", "retry.deadline", "retry.max_wait"])
    def test_a_number_no_timer_can_take_is_refused(self, where: str, bad: float) -> None:
        data = shipped_data()
        table = data["callbacks"] if where.startswith("callbacks") else data["states"][3]["retry"]
        table[where.split(".")[1]] = bad
        path = where if where.startswith("callbacks") else f"states[3].{where}"
        assert path in paths(data)

    @pytest.mark.parametrize("bad", [float("inf"), float("nan"), -0.5, 10**400])
    def test_a_retry_wait_must_be_finite(self, bad: float) -> None:
        data = shipped_data()
        data["states"][3]["retry"]["wait"] = bad
        assert "states[3].retry.wait" in paths(data)

    @pytest.mark.parametrize("bad", [0, 1001, 10**30])
    def test_attempts_are_from_one_to_a_thousand(self, bad: int) -> None:
        data = shipped_data()
        data["callbacks"]["attempts"] = bad
        assert Problem("callbacks.attempts", "must be from 1 to 1000") in problems(data)

    def test_the_callback_policy_is_the_definitions_own(self) -> None:
        data = shipped_data()
        del data["callbacks"]
        assert problems(data) == [Problem("callbacks", "must be a table with timeout, attempts and deadline")]
        data["callbacks"] = {"timeout": 5}
        assert paths(data) == ["callbacks.attempts", "callbacks.deadline"]

    def test_a_retry_names_its_reasons_as_strings(self) -> None:
        data = shipped_data()
        data["states"][3]["retry"]["on"] = [{"a": 1}, 5]
        assert paths(data) == ["states[3].retry.on", "states[3].retry.on"]

    @pytest.mark.parametrize("name", ["state", "trigger", "get_graph", "is_idle", "may_ok", "to_ready"])
    def test_a_reason_may_not_take_a_name_the_machine_keeps(self, name: str) -> None:
        data = shipped_data()
        data["reasons"][name] = 20
        data["transitions"].append({"trigger": name, "source": "loading", "dest": "failed"})
        message = f"{name!r} is a name the state machine keeps for itself"
        assert Problem(f"reasons.{name}", message) in problems(data)

    def test_a_huge_value_is_quoted_short(self) -> None:
        data = shipped_data()
        data["transitions"][0]["dest"] = "x" * 100_000
        [problem] = [p for p in problems(data) if p.path == "transitions[0].dest"]
        assert problem.message == "(a value of 100000 characters) is not a declared state"

    def test_a_definition_without_its_initial_state_is_refused(self) -> None:
        data = shipped_data()
        del data["initial"]
        assert Problem("initial", "is required: the name of the state the machine starts in") in problems(data)

    def test_a_wrong_schema_version_is_refused(self) -> None:
        data = shipped_data()
        data["schema"] = 99
        assert problems(data) == [Problem("schema", "must be 1 (found 99)")]

    def test_a_file_that_is_not_toml_is_one_problem(self, tmp_path: Path) -> None:
        path = tmp_path / "states.toml"
        path.write_text("schema = = 1\n")
        with pytest.raises(ConfigError) as caught:
            definitions.load(path, actions.reasons(), DEFINITION_SETTINGS)
        [problem] = caught.value.problems
        assert problem.path == "" and problem.message.startswith("not valid TOML")

    def test_the_definition_is_frozen(self) -> None:
        definition = parse(shipped_data())
        with pytest.raises(AttributeError):
            definition.initial = "ready"  # type: ignore[misc]
        with pytest.raises(TypeError):
            definition.reasons["new"] = 99  # type: ignore[index]

    def test_parsing_does_not_change_its_input(self) -> None:
        data = shipped_data()
        before = copy.deepcopy(data)
        parse(data)
        assert data == before
