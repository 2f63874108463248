"""`jupyter-init graph`: the machine as a diagram, mermaid (drawn by transitions) or Graphviz dot."""

from __future__ import annotations

import argparse
from pathlib import Path

from provisioner.commands.common import act_as_owner, add_output_dir, load_definition, output_dir
from provisioner.commands.state import describe
from provisioner.definition import Definition
from provisioner.errors import UsageError
from provisioner.record import STOPPED_STATE


def graph(definition: Definition, fmt: str, current: str | None) -> str:
    """The machine as a diagram: mermaid (drawn by transitions) or Graphviz dot."""
    if current is not None and not definition.has_state(current):
        raise UsageError(f"the recorded state {current!r} is not in {definition.source}")
    if fmt == "dot":
        return _dot(definition, current)
    from transitions.extensions import GraphMachine  # ~70 ms; only this command needs it

    class Model:
        pass

    model = Model()
    machine = GraphMachine(
        model=model,
        initial=definition.initial,
        graph_engine="mermaid",
        title="jupyter-init",
        **definition.machine_arguments(),
    )
    if current is not None:
        machine.set_state(current)  # drawn as the active state; the start arrow still points at the initial one
    drawn: str = model.get_graph(force_new=True).draw(None)  # type: ignore[attr-defined]
    if current is None:
        # transitions draws its model's state as the active one, and a model is always in some state (the initial
        # one): with no run asked about, that state is drawn as every other.
        drawn = drawn.replace(
            f"\n  Class {definition.initial} s_active\n", f"\n  Class {definition.initial} s_default\n"
        )
    return drawn.rstrip() + "\n"


def _dot(definition: Definition, current: str | None) -> str:
    lines = ['digraph "jupyter-init" {', "  rankdir=LR;", '  node [shape=box, style="rounded"];']
    for state in definition.states:
        attributes = ["peripheries=2"] if state.final else []
        if state.name == current:
            attributes.append('style="rounded,filled", fillcolor=darksalmon')
        # Quoted: a state may be named like a keyword of dot's (node, edge, graph).
        lines.append(f'  "{state.name}"' + (f" [{', '.join(attributes)}]" if attributes else "") + ";")
    edges: dict[tuple[str, str], list[str]] = {}
    for transition in definition.transitions:
        for source in transition.sources:
            edges.setdefault((source, transition.dest), []).append(transition.trigger)
    for (source, dest), triggers in edges.items():
        lines.append(f'  "{source}" -> "{dest}" [label="{" | ".join(triggers)}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Draw the state machine of a definition, every state and transition, on stdout. No state is marked unless "
        "--current asks for the recorded run's."
    )
    parser.add_argument(
        "--format",
        choices=("mermaid", "dot"),
        default="mermaid",
        help="mermaid (default: GitHub and GitLab draw it in Markdown) or dot (Graphviz)",
    )
    parser.add_argument("--current", action="store_true", help="mark the state the recorded run is in")
    parser.add_argument("--states", type=Path, metavar="FILE", help="definition to draw (default: the shipped one)")
    add_output_dir(parser)


def main(args: argparse.Namespace, started: float) -> int:
    definition = load_definition(args.states)
    current = None
    if args.current:
        out = output_dir(args.output_dir, args.states)
        act_as_owner(out)
        current = describe(out).get("state")
        current = None if current == STOPPED_STATE else current  # stopped: no state of the machine is current
    print(graph(definition, args.format, current), end="")
    return 0
