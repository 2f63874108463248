"""`jupyter-init boot --user NAME`: what the boot unit runs, as root, at every boot (see provisioner.boot).

It runs the settings root kept for NAME's server as a new run, once per boot, and its callbacks carry `boot` and
`boot_id`. Nothing is run when none are kept, when this boot was reported already (the first run's own boot among
them), or when the account's record says the server was stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from provisioner import boot as kept
from provisioner.boot import Boot
from provisioner.commands.common import load_definition, settings_of
from provisioner.commands.run import run
from provisioner.errors import UsageError
from provisioner.output import redact


def boot(name: str, started: float) -> int:
    if os.geteuid() != 0:
        raise UsageError("boot is root's: its unit (jupyter-init-boot@NAME.service) runs it at every boot")
    found = kept.load(name)
    if found is None:
        print(f"nothing to bring back for {name}: no run with --launcher systemd is kept for them")
        return 0
    plan, token, key_file = found
    current = kept.boot_id()
    if current is None:
        raise UsageError("this system gives no boot id (/proc/sys/kernel/random/boot_id): boots cannot be told apart")
    if plan.reported == current:
        print(f"this boot of the VM was reported already (boot {plan.boots}); nothing to do")
        return 0
    plan = kept.next_boot(name, plan, current)
    redact.add(token)
    redact.add_urls(plan.urls.values())
    os.environ.update(plan.environment)  # root's module system as the first run had it (the worker keeps these)
    settings = settings_of(plan.settings, str(plan.settings.get("home") or ""), token)
    if key_file is not None:
        from provisioner import signing

        settings = dataclasses.replace(settings, signing_key=signing.read_key(key_file, "the kept signing key"))
    definition = load_definition(Path(plan.states) if plan.states else None)
    return run(settings, definition, started, at_boot=Boot(plan.boots, current))


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run, as root, the settings a `run --launcher systemd --user NAME` kept for NAME's server: once per boot, with "
        "callbacks that carry `boot` and `boot_id`; nothing when this boot was reported already or `stop` stopped the "
        "server. jupyter-init-boot@NAME.service runs it at every boot."
    )
    parser.add_argument("--user", required=True, metavar="NAME", help="the account whose server comes back")


def main(args: argparse.Namespace, started: float) -> int:
    return boot(args.user, started)
