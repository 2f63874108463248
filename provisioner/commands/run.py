"""`jupyter-init run`: provision a server, or tell the platform about the one the record says is already up.

A live server in the record is never forgotten: a run asking for that same server (same token, address, port and
software) adopts it and goes through the machine again, sending every callback; a run asking for another one stops
it first. Either way the new record keeps the handle on whatever runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import hmac
import os
from pathlib import Path

from provisioner import boot, inputs, ownership, privsep, server, signing, systemd, tls
from provisioner import definition as definitions
from provisioner.actions.validating import token_problem
from provisioner.boot import Boot
from provisioner.commands.common import load_definition
from provisioner.definition import Definition
from provisioner.envmodules import COMMAND_TIMEOUT
from provisioner.errors import UsageError
from provisioner.frontdoor import check_old_call
from provisioner.output import log, redact
from provisioner.provision import Start, provision
from provisioner.record import URL_SETTINGS, Outcome, Record
from provisioner.resumeplan import origin, plan_adoption, server_alive
from provisioner.secret import TOKEN_ENV
from provisioner.settings import OPTIONS, Settings, help_text, resolve
from provisioner.store import Store

STOP_GRACE = 10.0  # seconds a replaced server gets to stop before SIGKILL
# What a server is started with: a run asking for other values asks for another server.
SERVER_SETTINGS = (
    *("ip", "module", "notebook_dir", "base_url", "idle_timeout", "launcher", "init_script", "user", "app"),
    *("tls", "certfile", "keyfile"),
)
# Settings added since records were first written, as every run before had them.
UNRECORDED = {"app": "notebook", "tls": "off"}


def run_deadline(settings: Settings, definition: Definition) -> float:
    """The longest a run may take by its own settings: module commands, retries, the server's start, callbacks,
    and stopping a server an earlier run left with other settings."""
    retries = sum(state.retry.deadline for state in definition.states if state.retry is not None)
    return 3 * COMMAND_TIMEOUT + retries + settings.timeout + definition.callbacks.deadline + STOP_GRACE + 65


def run(settings: Settings, definition: Definition, started: float, at_boot: Boot | None = None) -> int:
    """Provision a server from the start, or adopt or replace the one the output directory's record has alive.
    `at_boot`: run by the boot unit (provisioner.boot), for a boot after the first."""
    # As root with --user: from here on, the user's rights only; root starts a unit only if root asked for one.
    services = systemd.services(launch=settings.launcher == "systemd")
    if os.geteuid() == 0 and settings.user is not None and settings.user.uid != 0:
        ownership.check_output_dir(settings.out, settings.user)
        if at_boot is None:
            _arrange_boots(settings, definition)
    # The platform's key stays with root, which signs what it can vouch for.
    services |= signing.entrust(settings, definition, at_boot)
    privsep.act_for(settings.user, deadline=run_deadline(settings, definition), services=services)
    if privsep.monitored() and settings.signing_key is not None:
        settings.signing_key.wipe()  # the worker's copy: the account's process holds no key
    if os.geteuid() == 0:
        owner = ownership.owner_of(settings.out)
        if owner is not None:
            raise UsageError(
                f"{settings.out} belongs to {owner.name}: as root, give --user {owner.name} to run for them"
            )
    store = Store(settings.out)
    try:
        store.lock()
    except OSError as exc:
        # The validating state fails the run on it, with its callback: the record is the only handle on a server,
        # so a run that cannot keep one starts none.
        problem = f"cannot record the run in {settings.out}: {exc.strerror or exc}"
        return provision(settings, definition, None, started, Start.afresh(definition), unrecordable=problem)
    try:
        start = Start.afresh(definition, at_boot)
        previous = store.load()
        if at_boot is not None and previous is not None and previous.outcome is Outcome.STOPPED:
            print(f"the server was stopped (jupyter-init stop): not started at boot {at_boot.count}")
            return 0
        if previous is not None and server_alive(previous):
            if token_problem(settings.token, settings.ip) is not None:
                # This run fails on its token (validating) and sends its callback: it must neither take the live
                # server down nor touch the record that is the only handle on it.
                return provision(settings, definition, None, started, start)
            start = _adopt_or_replace(previous, settings, definition, store, at_boot)
        unkept = None
        # A token validating will refuse is not kept (it may not even be text a file can hold).
        if settings.token is not None and token_problem(settings.token, settings.ip) is None:
            unkept = store.save_token(settings.token)
        unkept = unkept or store.save_endpoints(settings.urls())
        return provision(settings, definition, store, started, start, unrecordable=unkept)
    finally:
        store.unlock()


def _arrange_boots(settings: Settings, definition: Definition) -> None:
    """As root for an account: whether this run's server comes back at later boots (provisioner.boot). A run
    validating refuses changes nothing kept: it is not run again at boot, nor does it disarm an earlier one."""
    assert settings.user is not None, "only a run for an account is brought back"
    if token_problem(settings.token, settings.ip) is not None:
        return
    if settings.launcher == "systemd":
        boot.keep(settings, definition, definitions.default_path())
    else:
        boot.forget(settings.user.name)  # an earlier run's unit would start a server this run did not ask for


def _adopt_or_replace(
    previous: Record, settings: Settings, definition: Definition, store: Store, start_boot: Boot | None
) -> Start:
    recorded = previous.server
    assert recorded is not None, "server_alive() said there is one"
    where = f"pid {recorded.pid}, port {recorded.port}"
    differences = differences_from(previous, settings, store)
    plan = None if differences else plan_adoption(previous, definition)
    if plan is not None:
        log.info("the server an earlier run started is up (%s) with these settings: adopting it", where)
        return Start(plan, found=previous, alive=True, origin=origin(previous), boot=start_boot)
    why = ", ".join(differences) or "the record does not say which state started it"
    log.info("stopping the server an earlier run started (%s): %s", where, why)
    server.stop(recorded.pid, start_time=recorded.start_time, grace=STOP_GRACE, unit=recorded.unit, exe=recorded.exe)
    return Start.afresh(definition, start_boot)


def _certificate_differences(previous: Record, settings: Settings) -> list[str]:
    """With TLS, the server must show a certificate the record names (its pin); the platform's own must not have
    been renewed since (its file now holds another, which a new server would show)."""
    if settings.tls == "off" and settings.certfile is None:
        return []
    recorded = previous.server.fingerprint if previous.server is not None else None
    if recorded is None:
        return ["no recorded certificate"]
    if settings.certfile is not None and settings.keyfile is not None:
        try:
            current = tls.load(settings.certfile, settings.keyfile).fingerprint
        except tls.TLSError:
            current = None
        if current != recorded:
            return ["another certificate in --certfile"]
    return []


def differences_from(previous: Record, settings: Settings, store: Store) -> list[str]:
    """What this run asks for that the recorded server was not started with, in words; empty when it is the same."""
    asked, recorded = settings.public(), previous.settings
    # A setting a record from an older version does not have was its default then.
    found = [
        f"another {name.replace('_', ' ')}"
        for name in SERVER_SETTINGS
        if asked.get(name) != recorded.get(name, UNRECORDED.get(name))
    ]
    port = previous.server.port if previous.server is not None else None
    if settings.port is not None and settings.port != port:
        found.append(f"port {settings.port} asked for, the server has {port}")
    found += _certificate_differences(previous, settings)
    try:
        kept = store.load_token().reveal()
    except (OSError, UnicodeDecodeError):
        kept = ""
    token = settings.token.reveal() if settings.token is not None else ""
    if not kept or not hmac.compare_digest(kept.encode(), token.encode()):
        found.append("another token")
    return found


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Bring up a Jupyter Notebook server and report how it went to the platform's callback URLs."
    parser.add_argument(
        "token",
        nargs="?",
        metavar="TOKEN",
        help="the old call's three words, TOKEN START_URL COMPLETE_URL, all or none (better: --token-file or "
        "$JUPYTER_TOKEN, and the URLs as options)",
    )
    parser.add_argument("start_url", nargs="?", metavar="START_URL", help="POSTed status=init_started, or a failure")
    parser.add_argument(
        "complete_url", nargs="?", metavar="COMPLETE_URL", help="POSTed status=init_completed or a failure"
    )
    parser.add_argument("--start-url", dest="start_url_option", metavar="URL", help="START_URL as an option")
    parser.add_argument("--complete-url", dest="complete_url_option", metavar="URL", help="COMPLETE_URL as an option")
    parser.add_argument(
        "--progress-url", dest="progress_url_option", metavar="URL", help="POSTed status=<state> at every transition"
    )
    parser.add_argument(
        "--callbacks-file",
        type=Path,
        metavar="PATH",
        help=f"the callback URLs from this file (TOML: start_url, complete_url, progress_url), out of ps; or "
        f"${inputs.CALLBACKS_FILE_ENV}",
    )
    parser.add_argument("--token-file", type=Path, metavar="PATH", help="read the token from this file")
    parser.add_argument(
        "--signing-key-file",
        type=Path,
        metavar="PATH",
        help=f"sign callbacks with the platform's key in this file instead of the token; or "
        f"${inputs.SIGNING_KEY_FILE_ENV}",
    )
    # Every setting is an option of the same name, its help and default from settings.OPTIONS.
    for name, option in OPTIONS.items():
        if option.flag:
            # --no-NAME too: the command line beats a definition or an environment that turned it on.
            action = argparse.BooleanOptionalAction
            parser.add_argument("--" + name.replace("_", "-"), action=action, help=help_text(name))
        else:
            parser.add_argument("--" + name.replace("_", "-"), metavar=option.metavar, help=help_text(name))
    parser.add_argument(
        "--states", type=Path, metavar="FILE", help="state machine definition (default: the shipped one)"
    )
    parser.add_argument("--json-log", action="store_true", help="one JSON object per event on stderr, for machines")


def main(args: argparse.Namespace, started: float) -> int:
    check_old_call(args)
    token = inputs.token(args.token, args.token_file)
    redact.add(token)  # before anything can echo a value: a mistyped option may hold the token
    definition = load_definition(args.states)
    urls = inputs.callback_urls(
        {name: getattr(args, name, None) for name in URL_SETTINGS},
        {name: getattr(args, f"{name}_option") for name in URL_SETTINGS},
        args.callbacks_file,
    )
    # Every layered setting has an option of the same name.
    settings = resolve({name: getattr(args, name) for name in OPTIONS} | urls, os.environ, definition.settings, token)
    key_file = inputs.signing_key_file(args.signing_key_file)
    if key_file is not None:
        settings = dataclasses.replace(settings, signing_key=signing.read_key(*key_file))
    redact.add_urls(settings.urls().values())
    if args.token:
        log.warning("warning: a token on the command line is visible in ps; use --token-file or $%s", TOKEN_ENV)
    return run(settings, definition, started)
