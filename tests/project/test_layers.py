"""The package's layers, as docs/development.md writes them down: no import goes up a layer or round in a circle."""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.helpers.constants import CHECKOUT
from tests.helpers.docs import WHERE

PACKAGE = CHECKOUT / "provisioner"


def module_name(path: Path) -> str:
    parts = path.relative_to(CHECKOUT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    return imports_in(path.read_text(), module_name(path), path.name == "__init__.py", known)


def imports_in(source: str, own: str, is_package: bool, known: set[str]) -> set[str]:
    """The package's modules that `source` (module `own`) imports, wherever the import stands (a function,
    `if TYPE_CHECKING:`). `from provisioner import x` is module x when there is one, else the package itself."""
    package = own if is_package else own.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            for alias in node.names:
                if f"{source}.{alias.name}" in known:
                    found.add(f"{source}.{alias.name}")
                elif source in known:
                    found.add(source)
    return found - {own}


def layers_written() -> list[tuple[str, list[str]]]:
    """The table's rows, top to bottom: each layer's name and its modules' patterns (`commands.*`)."""
    rows = re.findall(r"^\| ([a-z ]+) \| ((?:`[\w.*]+` ?)+) \|", WHERE["layers"].text(), flags=re.MULTILINE)
    return [(name, re.findall(r"`([\w.*]+)`", names)) for name, names in rows]


def short(module: str) -> str:
    """A module's name as the table writes it: without `provisioner.`; the package's own `__init__`."""
    return module.removeprefix("provisioner.") if module != "provisioner" else "__init__"


def layer_of(module: str, layers: list[tuple[str, list[str]]]) -> list[int]:
    """The positions (from the top) of every layer naming `module`: one, when the table is right."""
    name = short(module)
    return [
        index
        for index, (_, patterns) in enumerate(layers)
        if any(name == pattern or (pattern.endswith(".*") and name.startswith(pattern[:-1])) for pattern in patterns)
    ]


def upward(graph: Mapping[str, set[str]], level: Mapping[str, int]) -> list[str]:
    """Each import of a module from a layer above its own."""
    return sorted(
        f"{importer} -> {imported}"
        for importer, deps in graph.items()
        for imported in deps
        if level[imported] < level[importer]
    )


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The import circles: strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def package_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(path, set(found)) for name, path in found.items()}


def test_every_module_is_in_exactly_one_layer_and_every_layer_names_a_module() -> None:
    layers = layers_written()
    assert len(layers) >= 5, "the table of layers is where tests/helpers/docs.py says"
    misplaced = {module: layer_of(module, layers) for module in modules() if len(layer_of(module, layers)) != 1}
    assert misplaced == {}, "a module in no layer, or in more than one"
    for name, patterns in layers:
        for pattern in patterns:
            assert any(pattern in layer_of_names(module) for module in modules()), f"{name}: {pattern} is no module"


def layer_of_names(module: str) -> set[str]:
    """The patterns of the table that would name `module`."""
    name = short(module)
    parts = name.split(".")
    return {name} | {".".join(parts[:i]) + ".*" for i in range(1, len(parts))}


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    layers = layers_written()
    level = {module: layer_of(module, layers)[0] for module in modules()}
    assert upward(package_graph(), level) == []


def test_no_import_goes_round_in_a_circle() -> None:
    assert cycles(package_graph()) == []


@pytest.mark.parametrize(
    ("graph", "found"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": set(), "c": {"b"}}, []),
    ],
)
def test_the_circle_finder_finds_a_circle_and_only_a_circle(graph: dict[str, set[str]], found: list[list[str]]) -> None:
    assert cycles(graph) == found


def test_an_import_of_a_higher_layer_is_found_wherever_it_stands() -> None:
    # The checks must be able to fail: an upward import in a function or for the type checker only counts too.
    known = {"provisioner.record", "provisioner.context", "provisioner.output"}
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from provisioner.context import RunContext\n"
        "def f():\n    from . import output\n"
    )
    found = imports_in(source, "provisioner.record", False, known)
    assert found == {"provisioner.context", "provisioner.output"}
    level = {"provisioner.record": 2, "provisioner.context": 1, "provisioner.output": 3}
    assert upward({"provisioner.record": found}, level) == ["provisioner.record -> provisioner.context"]
