"""What each verb does, given typed arguments; cli.py only turns the command line into these calls."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from transitions import MachineError

from provisioner import actions, netinfo, privsep, server
from provisioner import definition as definitions
from provisioner import systemd as _systemd  # noqa: F401 - registers what the monitor does for a worker
from provisioner.actions.verifying import probe
from provisioner.context import INFO_TXT, RunContext, log
from provisioner.definition import Definition
from provisioner.envmodules import COMMAND_TIMEOUT
from provisioner.errors import Interrupted, ProvisionError, UsageError
from provisioner.journal import FAILED, INTERRUPTED, READY, STOPPED, Journal, Plan, plan_resume, server_alive
from provisioner.machine import Outcome, Runner
from provisioner.output import printable, redact
from provisioner.reporter import Reporter
from provisioner.settings import SETTING_PARSERS, Secret, Settings, resolve
from provisioner.store import Store


def load_definition(path: Path | None) -> Definition:
    """The definition at `path`, or the one shipped with the package; validated whole."""
    if path is not None:
        privsep.check_root_input(path, "--states")  # as root, its settings decide what runs as whom
    return definitions.load(path or definitions.default_path(), actions.reasons(), SETTING_PARSERS)


def output_dir(option: str | None, states: Path | None) -> Path:
    """The output directory as `run` would choose it: --output-dir, $PROVISIONER_OUTPUT_DIR, states.toml, ~/.jupyter."""
    return resolve({"output_dir": option}, os.environ, load_definition(states).settings, None).out


def _locked_store(out: Path) -> Store | None:
    """The store of an existing output directory, locked, or None when there is no directory: for the verbs that
    never create one."""
    if not _is_directory(out):
        return None
    store = Store(out)
    try:
        store.lock(create=False)
    except OSError as exc:
        raise UsageError(f"cannot use {out}: {exc.strerror or exc}") from None
    return store


def _is_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except (OSError, ValueError):
        return False


def _is_directory(out: Path) -> bool:
    """Whether `out` is a directory; UsageError when we may not even look (a home made 0000, say)."""
    try:
        return stat.S_ISDIR(out.stat().st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        raise UsageError(f"cannot use {out}: {exc.strerror or exc}") from None


# Seconds a verb's worker may take as root's delegate before the monitor kills it (privsep.act_for).
READ_DEADLINE = 60.0  # state, graph: read a record
RESUME_DEADLINE = 900.0  # a resume's module load (up to 3 module commands), server start and callbacks


def act_as_owner(out: Path, deadline: float = READ_DEADLINE, grants: frozenset[str] = frozenset()) -> None:
    """As root on an output directory another account owns: go on as that account (privsep), before reading it."""
    privsep.act_for(privsep.owner_of(out), deadline=deadline, grants=grants)


def run_deadline(settings: Settings, definition: Definition) -> float:
    """The longest a run may take by its own settings: module commands, retries, the server's start, callbacks."""
    retries = sum(state.retry.deadline for state in definition.states if state.retry is not None)
    return 3 * COMMAND_TIMEOUT + retries + settings.timeout + definition.callbacks.deadline + 60


def run(settings: Settings, definition: Definition, started: float) -> int:
    """Provision a server from the start, unless the one recorded in the output directory is up and ours."""
    # As root with --user: from here on, the user's rights only; root starts a unit only if root asked for one.
    grants = frozenset({"launch"}) if settings.launcher == "systemd" else frozenset()
    privsep.act_for(settings.user, deadline=run_deadline(settings, definition), grants=grants)
    if os.geteuid() == 0:
        owner = privsep.owner_of(settings.out)
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
        return provision(settings, definition, None, started, previous=None, unrecordable=problem)
    try:
        previous = store.load()
        if previous is not None and settings.token is not None and _still_serving(previous, settings.token):
            url, pid = previous["server"].get("url"), previous["server"]["pid"]
            log.info("the server from an earlier run is up at %s (pid %s); nothing to do", url, pid)
            return 0
        if settings.token is not None and settings.token.reveal():
            store.save_token(settings.token)
        return provision(settings, definition, store, started, previous=None)
    finally:
        store.unlock()


def _still_serving(record: dict[str, Any], token: Secret) -> bool:
    recorded = record.get("server") or {}
    if record.get("outcome") != READY or not server_alive(record) or not recorded.get("port"):
        return False
    recorded_settings = record.get("settings") or {}
    host = netinfo.local_host(str(recorded_settings.get("ip", "127.0.0.1")))
    port = int(recorded["port"])
    if not netinfo.listens(int(recorded["pid"]), port):  # the token goes only to the recorded server itself
        return False
    return probe(host, port, token.reveal(), str(recorded_settings.get("base_url", "/"))) == 200


def resume(out: Path, states: Path | None, started: float, launcher: str | None = None) -> int:
    """Continue the run recorded in `out` from where it stopped, with the settings and token it had.

    As root on a directory another account owns, all of it runs as that account: nothing in the record (which they
    can edit) decides what root runs.
    """
    act_as_owner(out, RESUME_DEADLINE, frozenset({"launch"}) if launcher == "systemd" else frozenset())
    store = _locked_store(out)
    if store is None:
        raise UsageError(f"nothing to resume: no provisioner state in {out} (start with: provisioner run)")
    try:
        previous = store.load()
        if previous is None:
            raise UsageError(f"nothing to resume: no provisioner state in {out} (start with: provisioner run)")
        recorded_source = Path(str((previous.get("definition") or {}).get("source", "")))
        definition = load_definition(states or (recorded_source if _is_file(recorded_source) else None))
        if definition.digest != (previous.get("definition") or {}).get("digest"):
            log.warning(
                "warning: %s has changed since the recorded run; resuming with it as it is now", definition.source
            )
        try:
            token = store.load_token()
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or exc
            raise UsageError(f"cannot resume: the token kept in {out} cannot be read ({why}); start afresh") from None
        redact.add(token)  # as the command line's token is, the moment it is read
        settings = _recorded_settings(previous, token)
        if launcher is not None:
            settings = dataclasses.replace(settings, launcher=launcher)
        if os.geteuid() == 0 and settings.user is not None and settings.user.uid != 0:
            name = settings.user.name
            raise UsageError(
                f"the recorded run is {name}'s but {out} is root's; start afresh: provisioner run --user {name}"
            )
        return provision(settings, definition, store, started, previous)
    finally:
        store.unlock()


def _recorded_settings(record: dict[str, Any], token: Secret | None) -> Settings:
    recorded = dict(record.get("settings") or {})
    home = str(recorded.pop("home", "") or Path.home())
    cli = {key: value for key, value in recorded.items() if value is not None}
    try:
        return resolve(cli, {"HOME": home}, {}, token)
    except ProvisionError as exc:
        raise UsageError(f"the recorded settings cannot be used: {exc.message}") from None
    except (OSError, ValueError) as exc:  # what the record holds is data: a path we may not look at, a NUL...
        raise UsageError(f"the recorded settings cannot be used: {exc}") from None


def provision(
    settings: Settings,
    definition: Definition,
    store: Store | None,
    started: float,
    previous: dict[str, Any] | None,
    *,
    unrecordable: str | None = None,
) -> int:
    """Run the machine: from the start, or (with `previous`) from where the recorded run stopped.

    A fresh run is a resume from nothing: one code path, with a plan that starts at the initial state and skips nothing.
    """
    ctx = RunContext(settings=settings, unrecordable=unrecordable)
    journal = Journal(store, previous)
    plan = Plan(definition.initial, frozenset())
    if previous is not None:
        alive = server_alive(previous)
        plan = plan_resume(previous, definition, alive)
        _restore(ctx, previous, alive)
        log.info("resuming %s", f"at {plan.start}" if plan.start else "a finished run: only undelivered callbacks")
    expected = bool(settings.start_url or settings.complete_url or settings.progress_url)
    reporter = Reporter(
        definition.callbacks,
        redact,
        key=settings.token,
        delivered=journal.delivered(),
        on_done=journal.save,
        warm=expected,
    )
    journal.begin(definition, settings, ctx, reporter.deliveries)
    _resend(journal, reporter, settings)
    outcome: Outcome | None = None
    interrupted: Interrupted | None = None
    with _signals_interrupt():
        try:
            if plan.start is None:
                outcome = Outcome(str((previous or {}).get("state", "")), 0)
            else:
                outcome = Runner(definition, ctx, reporter, journal, started).run(plan.start, plan.skip)
        except MachineError as exc:
            # Only a record's history can lead the machine where the definition has no way (it was edited).
            raise UsageError(f"the recorded run cannot be resumed ({exc.value}); start afresh") from None
        except Interrupted as exc:
            interrupted = exc
            journal.interrupted(exc.message)
            _abandon(ctx, exc)
        finally:
            # Interrupted, we are being shut down: give the callbacks a moment, not the whole deadline.
            reporter.close(definition.callbacks.deadline if interrupted is None else INTERRUPTED_GRACE)
            journal.finish(_final_outcome(outcome, interrupted))
    if interrupted is not None:
        raise interrupted
    assert outcome is not None
    if outcome.exit_code == 0:
        log.info("connection details: %s", ctx.out / INFO_TXT)
    return outcome.exit_code


INTERRUPTED_GRACE = 3.0
CAUGHT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """Turn SIGTERM, SIGINT and SIGHUP into Interrupted in the main thread, so the run can clean up and record."""

    def handler(signum: int, frame: object) -> None:
        for caught in CAUGHT_SIGNALS:  # a second signal while cleaning up must not cut the cleanup short
            signal.signal(caught, signal.SIG_IGN)
        raise Interrupted(signum)

    previous = {caught: signal.signal(caught, handler) for caught in CAUGHT_SIGNALS}
    try:
        yield
    finally:
        for caught, action in previous.items():
            signal.signal(caught, action)


def _abandon(ctx: RunContext, exc: Interrupted) -> None:
    log.warning("warning: %s; the run is recorded and `provisioner resume` continues it", exc.message)
    ctx.stop_unfinished_server()


def _final_outcome(outcome: Outcome | None, interrupted: Interrupted | None) -> str:
    if interrupted is not None or outcome is None:
        return INTERRUPTED
    return READY if outcome.exit_code == 0 else FAILED


def _restore(ctx: RunContext, record: dict[str, Any], alive: bool) -> None:
    """Give a resumed run what the skipped states found: the port, and the server if it still runs."""
    port = record.get("port")
    ctx.port = port if isinstance(port, int) else None
    if alive:
        recorded = record["server"]
        ctx.pid, ctx.pid_start, ctx.unit = recorded["pid"], recorded.get("start_time"), recorded.get("unit")
        ctx.pid_exe = recorded.get("exe")
        ctx.server_started = time.monotonic()
        ctx.handed_over = record.get("outcome") == READY or bool(recorded.get("url"))


def _resend(journal: Journal, reporter: Reporter, settings: Settings) -> None:
    for callback in journal.undelivered():
        endpoint = str(callback.get("endpoint"))
        url = settings.endpoint(endpoint)
        if url:
            reporter.send(endpoint, url, dict(callback.get("fields") or {}))


def check(path: Path | None) -> int:
    """Validate a definition; ConfigError lists every problem."""
    definition = load_definition(path)
    states = len(definition.states)
    print(f"{definition.source}: ok ({states} states, {len(definition.transitions)} transitions)")
    return 0


# provisioner state: exit codes like `cloud-init status`.
STATUS_EXIT = {"ready": 0, "failed": 1, INTERRUPTED: 1, "stopped": 1, "gone": 1, "running": 2, "never_run": 2}


def describe(out: Path) -> dict[str, Any]:
    """The state dump: the record as stored, with `status` and whether the server is alive now. No token in it."""
    store = Store(out)
    record = store.load()
    if record is None:
        return {"status": "never_run", "output_dir": str(out)}
    alive = server_alive(record)
    if store.locked_by_another():
        status = "running"
    elif record.get("outcome") == READY:
        status = "ready" if alive else "gone"
    elif record.get("outcome") in (FAILED, STOPPED):
        status = str(record["outcome"])
    else:
        status = "interrupted"
    dump: dict[str, Any] = {"status": status, "output_dir": str(out), **record}
    if dump.get("server"):
        dump["server"] = {**dump["server"], "alive": alive}
    return dump


def state(out: Path, as_json: bool) -> int:
    act_as_owner(out)
    dump = describe(out)
    text = json.dumps(dump, indent=2) if as_json else "\n".join(map(printable, render_state(dump).splitlines()))
    print(redact(text))
    return STATUS_EXIT[dump["status"]]


def render_state(dump: dict[str, Any]) -> str:
    lines = [f"status:     {dump['status']}", f"output dir: {dump['output_dir']}"]
    if dump["status"] == "never_run":
        return "\n".join([*lines, "no provisioner run is recorded here"])
    lines.append(f"state:      {dump.get('state')}")
    failure = dump.get("failure")
    if failure:
        lines.append(f"failure:    {failure.get('reason')} in {failure.get('state')}: {failure.get('message')}")
    recorded = dump.get("server")
    if recorded:
        running = "running" if recorded.get("alive") else "not running"
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
        result = "delivered" if callback.get("delivered") else f"NOT delivered ({callback.get('error')})"
        endpoint = str(callback.get("endpoint"))
        lines.append(f"  {endpoint:<9} {what:<28} {result} ({http}{callback.get('attempts', 0)} attempts)")
    lines.append(f"updated:    {dump.get('updated')}")
    return "\n".join(lines)


def stop(out: Path, grace: float) -> int:
    """Stop the recorded server with its kernels, wait for its port to be free, and record that.

    As root on a directory another account owns, it runs as that account: it can signal only their processes, and
    only the one that is the recorded server (its uid, start time and program).
    """
    act_as_owner(out, 2 * grace + READ_DEADLINE)
    store = _locked_store(out)
    if store is None:
        print(f"no server is recorded in {out}; nothing to stop")
        return 0
    try:
        record = store.load()
        recorded = (record or {}).get("server")
        if record is None or not isinstance(recorded, dict) or not isinstance(recorded.get("pid"), int):
            print(f"no server is recorded in {out}; nothing to stop")
            return 0
        pid, port, unit = recorded["pid"], recorded.get("port"), recorded.get("unit")
        identity = {"start_time": recorded.get("start_time"), "exe": recorded.get("exe")}
        if not server.stop(pid, grace=grace, unit=unit if isinstance(unit, str) else None, **identity):
            print(f"the recorded server (pid {pid}) is not running; nothing to stop")
            return 0
        ip = str((record.get("settings") or {}).get("ip", "0.0.0.0"))  # noqa: S104 - Jupyter's own default
        deadline = time.monotonic() + grace
        with contextlib.suppress(OSError):  # a recorded address not of this machine: nothing to wait for
            while isinstance(port, int) and not netinfo.port_free(ip, port) and time.monotonic() < deadline:
                time.sleep(0.05)
        Journal(store, record).stopped()
        print(f"stopped the server (pid {pid}); port {port} is free")
        return 0
    finally:
        store.unlock()


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
        title="provisioner",
        **definition.machine_arguments(),
    )
    if current is not None:
        machine.set_state(current)  # drawn as the active state; the start arrow still points at the initial one
    drawn: str = model.get_graph(force_new=True).draw(None)  # type: ignore[attr-defined]
    return drawn.rstrip() + "\n"


def _dot(definition: Definition, current: str | None) -> str:
    lines = ["digraph provisioner {", "  rankdir=LR;", '  node [shape=box, style="rounded"];']
    for state in definition.states:
        attributes = ["peripheries=2"] if state.final else []
        if state.name == current:
            attributes.append('style="rounded,filled", fillcolor=darksalmon')
        lines.append(f"  {state.name}" + (f" [{', '.join(attributes)}]" if attributes else "") + ";")
    edges: dict[tuple[str, str], list[str]] = {}
    for transition in definition.transitions:
        for source in transition.sources:
            edges.setdefault((source, transition.dest), []).append(transition.trigger)
    for (source, dest), triggers in edges.items():
        lines.append(f'  {source} -> {dest} [label="{" | ".join(triggers)}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"
