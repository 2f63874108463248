"""`jupyter-init resume`: continue the recorded run from where it stopped, with the settings and token it had.

As root on a directory another account owns, all of it runs as that account: nothing in the record (which they
can edit) decides what root runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from provisioner.actions.validating import token_problem
from provisioner.commands.common import (
    RESUME_DEADLINE,
    act_as_owner,
    add_output_dir,
    is_file,
    load_definition,
    locked_store,
    output_dir,
    settings_of,
)
from provisioner.errors import UsageError
from provisioner.output import log, redact
from provisioner.provision import Start, provision
from provisioner.record import MASK, Record, mask_url
from provisioner.resumeplan import plan_resume, server_alive
from provisioner.secret import Secret
from provisioner.settings import Settings
from provisioner.store import Store


def resume(out: Path, states: Path | None, started: float, launcher: str | None = None) -> int:
    act_as_owner(out, RESUME_DEADLINE, launch=launcher == "systemd")
    store = locked_store(out)
    nothing = f"nothing to resume: no jupyter-init state in {out} (start with: jupyter-init run)"
    if store is None:
        raise UsageError(nothing)
    try:
        previous = store.load()
        if previous is None:
            raise UsageError(nothing)
        recorded_source = Path(previous.definition.get("source", ""))
        definition = load_definition(states or (recorded_source if is_file(recorded_source) else None))
        if definition.digest != previous.definition.get("digest"):
            log.warning(
                "warning: %s has changed since the recorded run; resuming with it as it is now", definition.source
            )
        try:
            token = store.load_token()
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or exc
            raise UsageError(f"cannot resume: the token kept in {out} cannot be read ({why}); start afresh") from None
        redact.add(token)  # as the command line's token is, the moment it is read
        settings = recorded_settings(previous, token, store)
        if launcher is not None:
            settings = dataclasses.replace(settings, launcher=launcher)
        if os.geteuid() == 0 and settings.user is not None and settings.user.uid != 0:
            name = settings.user.name
            raise UsageError(
                f"the recorded run is {name}'s but {out} is root's; start afresh: jupyter-init run --user {name}"
            )
        store.save_endpoints(settings.urls(), only=False)  # a schema 1 record held them whole: written masked now
        alive = server_alive(previous)
        weak = token_problem(token, settings.ip)
        if weak is not None and not alive and token is not None:
            # Validating passed under an older rule, and is not run again: no server is started with this token.
            raise UsageError(f"cannot resume: {weak}; start afresh (jupyter-init run) with another token")
        plan = plan_resume(previous, definition, alive)
        if alive and plan.start == definition.initial and not plan.skip:
            # Starting over would start a second server beside the one the record names.
            raise UsageError(
                "the recorded run cannot be continued while its server runs; stop it first: jupyter-init stop"
            )
        log.info("resuming %s", f"at {plan.start}" if plan.start else "a finished run: only undelivered callbacks")
        return provision(
            settings, definition, store, started, Start(plan, record=previous, found=previous, alive=alive)
        )
    finally:
        store.unlock()


def recorded_settings(record: Record, token: Secret | None, store: Store) -> Settings:
    """The settings of the recorded run, with the callback URLs as given (the record holds them masked)."""
    recorded = dict(record.settings)
    home = str(recorded.pop("home", "") or Path.home())
    kept = store.load_endpoints()
    for name in ("start_url", "complete_url", "progress_url"):
        url = kept.get(name)
        if url is not None and mask_url(url) == recorded.get(name):
            recorded[name] = url
            redact.add_urls([url])
        elif MASK in str(recorded.get(name) or ""):
            log.warning("warning: the %s is recorded without its secrets and was not kept; no callbacks to it", name)
            recorded[name] = None
    return settings_of(recorded, home, token)


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Continue the run recorded in the output directory: re-run the state that failed or was interrupted, skip the "
        "ones that completed, deliver the callbacks that were not. Needs no token."
    )
    add_output_dir(parser)
    parser.add_argument("--states", type=Path, metavar="FILE", help="definition (default: the recorded run's)")
    parser.add_argument(
        "--launcher",
        choices=("process", "systemd"),
        help="instead of the recorded one; as root for an account, a systemd unit is started only when given here",
    )


def main(args: argparse.Namespace, started: float) -> int:
    return resume(output_dir(args.output_dir, None), args.states, started, args.launcher)
