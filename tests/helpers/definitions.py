"""The shipped definition as data and as the code loads it, and TOML written back from data."""

from __future__ import annotations

import datetime
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from provisioner.commands.common import load_definition
from tests.helpers.constants import CHECKOUT

if TYPE_CHECKING:
    from provisioner.definition import Definition

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


def toml_string(text: str) -> str:
    """A TOML basic string: every control character escaped, the rest as it is."""
    escaped = "".join(
        f"\\u{ord(ch):04x}" if ord(ch) < 0x20 or ord(ch) == 0x7F else "\\" + ch if ch in '"\\' else ch for ch in text
    )
    return f'"{escaped}"'


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # Python's repr is TOML's, inf and nan too
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_string(key)} = {toml_value(item)}" for key, item in value.items()) + " }"
    raise TypeError(value)


def to_toml(data: Mapping[str, Any]) -> str:
    """Any data TOML can hold, as a states.toml is laid out: top-level keys, tables, and arrays of tables."""

    def table_array(value: object) -> bool:
        return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)

    def pairs(table: Mapping[str, Any]) -> list[str]:
        return [f"{toml_string(key)} = {toml_value(value)}" for key, value in table.items()]

    lines = pairs({key: value for key, value in data.items() if not isinstance(value, dict) and not table_array(value)})
    for key, value in data.items():
        if isinstance(value, dict):
            lines += ["", f"[{toml_string(key)}]", *pairs(value)]
    for key, value in data.items():
        if table_array(value):
            for item in value:
                lines += ["", f"[[{toml_string(key)}]]", *pairs(item)]
    return "\n".join(lines) + "\n"


def shipped_definition() -> dict[str, Any]:
    """The shipped states.toml as data, for tests that change it."""
    data: dict[str, Any] = tomllib.loads((CHECKOUT / "states.toml").read_text())
    return data


def shipped() -> Definition:
    """The shipped definition, as the code loads it."""
    from provisioner import actions
    from provisioner import definition as definitions
    from provisioner.settings import DEFINITION_SETTINGS

    return definitions.load(definitions.default_path(), actions.reasons(), DEFINITION_SETTINGS)


def shipped_reasons() -> dict[str, int]:
    """The shipped definition's failure reasons and their exit codes, as the code loads them."""
    return dict(shipped().reasons)


DEFINITION = load_definition(None)


# The states of a run that goes well, in order.
FLOW = ["idle", "validating", "loading", "port_check", "starting", "verifying", "ready"]
