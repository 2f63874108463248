"""`jupyter-init state`: the state dump, as a table or JSON. No secret is in the record, so none is in the dump."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from provisioner.boot import boot_id
from provisioner.commands.common import act_as_owner, add_output_dir, output_dir
from provisioner.exits import Status
from provisioner.output import printable, redact
from provisioner.record import Outcome
from provisioner.resumeplan import server_alive
from provisioner.store import Store


def describe(out: Path) -> dict[str, Any]:
    """The state dump: the record as stored, with `status` and whether the server is alive now."""
    store = Store(out)
    record = store.load()
    if record is None:
        return {"status": Status.NEVER_RUN.value, "output_dir": str(out)}
    alive = server_alive(record)
    if store.locked_by_another():
        status = Status.RUNNING
    elif record.outcome is Outcome.READY:
        status = Status.READY if alive else Status.GONE
    elif record.outcome in (Outcome.FAILED, Outcome.STOPPED):
        status = Status(record.outcome.value)
    else:
        status = Status.INTERRUPTED
    dump: dict[str, Any] = {"status": status.value, "output_dir": str(out), **record.to_json()}
    if dump.get("server"):
        dump["server"] = {**dump["server"], "alive": alive}
    return dump


def state(out: Path, as_json: bool) -> int:
    act_as_owner(out)
    dump = describe(out)
    # Split on our own line ends only: splitlines() would also break at a \r, U+0085 or U+2028 an account wrote into
    # its record, and the piece after it would print as a line of ours (`status: ready`).
    text = json.dumps(dump, indent=2) if as_json else "\n".join(map(printable, render_state(dump).split("\n")))
    print(redact(text))
    return Status(dump["status"]).exit_code


def render_state(dump: dict[str, Any]) -> str:
    lines = [f"status:     {dump['status']}", f"output dir: {dump['output_dir']}"]
    if dump["status"] == Status.NEVER_RUN:
        return "\n".join([*lines, "no jupyter-init run is recorded here"])
    lines.append(f"state:      {dump.get('state')}")
    failure = dump.get("failure")
    if failure:
        lines.append(f"failure:    {failure.get('reason')} in {failure.get('state')}: {failure.get('message')}")
    if dump.get("boot"):
        lines.append(f"boot:       {dump['boot']} (the run that brought the server back after a reboot)")
    recorded = dump.get("server")
    if recorded:
        running = "running" if recorded.get("alive") else "not running"
        if not recorded.get("alive") and recorded.get("boot_id") not in (None, boot_id()):
            running += ": it was started before the VM last booted"
        if recorded.get("stopped"):
            running += f", stopped at {recorded['stopped']}"
        url = recorded.get("url") or f"port {recorded.get('port')}"
        lines.append(f"server:     pid {recorded['pid']}, {url} ({running})")
    lines.append("history:")
    for entry in dump.get("history", []):
        duration = f"{entry['duration']:.2f}s" if entry.get("duration") is not None else "-"
        outcome = entry.get("outcome") or "(did not finish)"
        detail = f" {entry['reason']}: {entry.get('error')}" if entry.get("reason") else ""
        entered, name = str(entry.get("entered", ""))[11:23], str(entry.get("state"))
        lines.append(f"  {entered:<12}  {name:<14} {duration:>8}  {outcome}{detail}")
    lines.append("callbacks:")
    for callback in dump.get("callbacks", []):
        what = str(callback.get("status")) + (f"/{callback['reason']}" if callback.get("reason") else "")
        http = f"HTTP {callback['http_status']}, " if callback.get("http_status") else ""
        delivery = str(callback.get("delivery"))
        result = (
            delivery if delivery == "delivered" else f"{delivery.upper()} ({callback.get('error') or 'not tried yet'})"
        )
        endpoint = str(callback.get("endpoint"))
        lines.append(f"  {endpoint:<9} {what:<28} {result} ({http}{callback.get('attempts', 0)} attempts)")
    lines.append(f"updated:    {dump.get('updated')}")
    return "\n".join(lines)


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Show the recorded run: its status, state, history, server and callbacks. The token is never shown."
    )
    add_output_dir(parser)
    parser.add_argument("--json", action="store_true", help="the same as JSON, for scripts")


def main(args: argparse.Namespace, started: float) -> int:
    return state(output_dir(args.output_dir, None), args.json)
