"""states.toml -> a validated, frozen Definition.

Every problem in a definition is collected as a Problem (where, what) and raised together in one ConfigError, so a
user fixes a definition in one pass. Nothing past this module sees the raw TOML. Only the file's shape is judged
here, never this machine: a definition that `jupyter-init check` passes on one machine passes on every machine.

Each table is judged here, one function per section; the states and transitions as a graph are judged by
provisioner.flow, called from parse() so that a file's problems still come all at once.
One module past the usual size, on purpose: each frozen class is built by the one check of its table and by nothing
else, so a key added to states.toml is a field and a check that change together, and belong side by side.
"""

from __future__ import annotations

import hashlib
import math
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from provisioner import files, flow
from provisioner.errors import ConfigError, Problem, path_label, shown
from provisioner.exits import REASONS
from provisioner.flow import OK
from provisioner.values import DAY

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on older Pythons only
    import tomli as tomllib

SCHEMA = 1
ENDPOINTS = ("start", "complete")
_NAME = re.compile(r"[a-z][a-z0-9_]*")  # whole names only (fullmatch): `$` would let "loading\n" through
# What `transitions` (and its GraphMachine) puts on the model besides one method per trigger.
_MODEL_NAMES = frozenset({"state", "trigger", "get_graph"})
_MODEL_PREFIXES = ("is_", "may_", "to_")


def default_path() -> Path:
    """The definition shipped with the package (a link to the top-level states.toml in a checkout)."""
    return Path(__file__).with_name("states.toml")


@dataclass(frozen=True)
class RetryPolicy:
    """How a state's action is tried again when it fails with one of the reasons in `on`."""

    on: frozenset[str]
    attempts: int
    wait: float
    backoff: float
    max_wait: float
    deadline: float


@dataclass(frozen=True)
class Notify:
    """One callback a transition sends: to which endpoint, with which status and reason."""

    endpoint: str
    status: str
    reason: str | None = None


@dataclass(frozen=True)
class StateDef:
    name: str
    action: str | None = None
    final: bool = False
    process_local: bool = False
    retry: RetryPolicy | None = None


@dataclass(frozen=True)
class TransitionDef:
    trigger: str
    sources: tuple[str, ...]
    dest: str
    notify: tuple[Notify, ...] = ()


@dataclass(frozen=True)
class CallbackPolicy:
    timeout: float
    attempts: int
    deadline: float


@dataclass(frozen=True)
class Definition:
    source: str
    digest: str
    initial: str
    states: tuple[StateDef, ...]
    transitions: tuple[TransitionDef, ...]
    reasons: Mapping[str, int]
    settings: Mapping[str, Any]
    callbacks: CallbackPolicy
    _by_name: Mapping[str, StateDef] = field(repr=False, compare=False, default_factory=dict)

    def state(self, name: str) -> StateDef:
        return self._by_name[name]

    def has_state(self, name: str) -> bool:
        return name in self._by_name

    def transition(self, source: str, trigger: str) -> TransitionDef | None:
        for transition in self.transitions:
            if transition.trigger == trigger and source in transition.sources:
                return transition
        return None

    def exit_code(self, reason: str) -> int:
        return self.reasons[reason]

    def machine_arguments(self) -> dict[str, Any]:
        """The states and transitions as `transitions.Machine` (or GraphMachine) takes them."""
        return {
            "states": [state.name for state in self.states],
            "transitions": [
                {"trigger": t.trigger, "source": list(t.sources), "dest": t.dest} for t in self.transitions
            ],
            "auto_transitions": False,
        }


# What the loader needs to know about the code: which actions exist and which reasons each can fail with, and which
# settings may be given defaults here, with the check of each one's shape (raising ValueError with the reason).
# Passed in so that this module imports neither.
ActionReasons = Mapping[str, tuple[str, ...]]
SettingChecks = Mapping[str, tuple[tuple[type, ...], Callable[[object], object]]]


@dataclass(frozen=True)
class Bounds:
    """Where a number of a definition must lie: finite (no inf, no nan), as tenacity and a socket timeout need,
    and far beyond any sane policy (a day, a thousand tries), so that no sum or backoff overflows."""

    least: float
    most: float
    least_allowed: bool  # whether `least` itself is allowed

    def hold(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        above = self.least <= value if self.least_allowed else self.least < value
        return above and value <= self.most  # an int is compared as it is: 10**400 is no float

    def __str__(self) -> str:
        if self.least_allowed:
            return f"from {self.least:g} to {self.most:g}"
        return f"more than {self.least:g} and at most {self.most:g}"


DURATION = Bounds(0, DAY, least_allowed=False)  # a timeout or a deadline: seconds, never none
PAUSE = Bounds(0, DAY, least_allowed=True)  # a wait between tries: may be none
BACKOFF = Bounds(1, 100, least_allowed=True)  # the factor each wait grows by
MAX_ATTEMPTS = 1000


def load(path: Path, actions: ActionReasons, setting_checks: SettingChecks, *, name: str | None = None) -> Definition:
    """Read and validate a definition file; raise ConfigError listing every problem."""
    label = name or path_label(path)  # a token given as --states by mistake is not named back
    try:
        raw = files.read_regular(path, follow=True)  # a FIFO or /dev/zero is an error, not a hang
    except OSError as exc:
        raise ConfigError(label, [Problem("", f"cannot read: {exc.strerror or exc}")]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(label, [Problem("", f"not valid TOML: {exc}")]) from None
    except RecursionError:
        raise ConfigError(label, [Problem("", "not valid TOML: nested deeper than any definition")]) from None
    return parse(data, actions, setting_checks, source=label, digest=hashlib.sha256(raw).hexdigest())


def parse(
    data: Mapping[str, Any], actions: ActionReasons, setting_checks: SettingChecks, *, source: str, digest: str = ""
) -> Definition:
    """Validate a definition's data, each table and then the machine they make (provisioner.flow); raise ConfigError
    listing every problem."""
    fields = _Fields()
    fields.unknown_keys(data, {"schema", "initial", "settings", "callbacks", "reasons", "states", "transitions"}, "")
    schema = data.get("schema")
    if schema != SCHEMA:
        fields.problem("schema", f"must be {SCHEMA} (found {shown(schema)})")
    reasons = _reasons(fields, data.get("reasons", {}))
    states, index = _states(fields, data.get("states"), reasons, actions)
    names = {state.name for state in states}
    initial = fields.typed(data, "initial", str, "initial", None)
    if initial is None:
        fields.problem("initial", "is required: the name of the state the machine starts in")
        initial = ""
    elif initial not in names:
        fields.problem("initial", f"{shown(initial)} is not a declared state")
    transitions = _transitions(fields, data.get("transitions"), names, reasons)
    settings = _settings(fields, data.get("settings", {}), setting_checks)
    callbacks = _callbacks(fields, data.get("callbacks"))
    by_name = {state.name: state for state in states}
    fields.problems += flow.problems(by_name, transitions, initial, actions, index)
    if fields.problems:
        raise ConfigError(source, fields.problems)
    return Definition(
        source=source,
        digest=digest,
        initial=initial,
        states=tuple(states),
        transitions=tuple(transitions),
        reasons=MappingProxyType(dict(reasons)),
        settings=MappingProxyType(dict(settings)),
        callbacks=callbacks,
        _by_name=MappingProxyType(by_name),
    )


class _Fields:
    """Reads the fields of a definition's tables, collecting every problem instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def unknown_keys(self, table: Mapping[str, Any], allowed: set[str], path: str) -> None:
        for key in table:
            if key not in allowed:
                self.problem(f"{path}.{key}" if path else key, "unknown key")

    def typed(self, table: Mapping[str, Any], key: str, kind: type | tuple[type, ...], path: str, default: Any) -> Any:
        if key not in table:
            return default
        value = table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python; a TOML `true` is never a number here.
        if isinstance(value, bool) and bool not in kinds:
            self.problem(path, f"must be {_kind_name(kinds)}")
            return default
        if not isinstance(value, kinds):
            self.problem(path, f"must be {_kind_name(kinds)}")
            return default
        return value

    def number(self, table: Mapping[str, Any], key: str, path: str, default: float | None, bounds: Bounds) -> float:
        """A finite number within `bounds`, as tenacity and a socket timeout need."""
        value = self.typed(table, key, (int, float), path, default)
        if value is None:
            self.problem(path, "is required")
            return bounds.least
        if not bounds.hold(value):
            self.problem(path, f"must be {bounds}")
            return bounds.least
        return float(value)

    def count(self, table: Mapping[str, Any], key: str, path: str, default: int | None) -> int:
        """A number of attempts, from 1 to MAX_ATTEMPTS."""
        value = self.typed(table, key, int, path, default)
        if value is None:
            self.problem(path, "is required")
            return 1
        if not 1 <= value <= MAX_ATTEMPTS:
            self.problem(path, f"must be from 1 to {MAX_ATTEMPTS}")
            return 1
        return int(value)


def _reasons(fields: _Fields, table: Any) -> dict[str, int]:
    if not isinstance(table, dict):
        fields.problem("reasons", "must be a table of reason = exit code")
        return {}
    reasons: dict[str, int] = {}
    seen: dict[int, str] = {}
    for reason, code in table.items():
        path = f"reasons.{reason}"
        if not _NAME.fullmatch(reason):
            fields.problem(path, "a reason is lower case letters, digits and _")
        elif reason in _MODEL_NAMES or reason.startswith(_MODEL_PREFIXES):
            # A reason is a trigger, and `transitions` makes each trigger a method of the model, beside these.
            fields.problem(path, f"{shown(reason)} is a name the state machine keeps for itself")
        if isinstance(code, bool) or not isinstance(code, int) or code not in REASONS:
            # The rest are the tool's own, one meaning each across every verb (provisioner/exits.py).
            fields.problem(
                path,
                f"exit code must be a whole number from {REASONS.start} to {REASONS.stop - 1} (the band of a "
                "run's failures; every other code has a meaning of its own)",
            )
            continue
        if code in seen:
            fields.problem(path, f"exit code {code} is already used by {shown(seen[code])}")
        seen[code] = reason
        reasons[reason] = code
    return reasons


def _states(
    fields: _Fields, items: Any, reasons: Mapping[str, int], actions: ActionReasons
) -> tuple[list[StateDef], dict[str, int]]:
    """The states, and each one's place in the file's [[states]] for the problems' paths."""
    if not isinstance(items, list) or not items:
        fields.problem("states", "must be a non-empty array of tables")
        return [], {}
    states: list[StateDef] = []
    places: dict[str, int] = {}
    for index, item in enumerate(items):
        path = f"states[{index}]"
        if not isinstance(item, dict):
            fields.problem(path, "must be a table")
            continue
        fields.unknown_keys(item, {"name", "action", "final", "process_local", "retry"}, path)
        name = fields.typed(item, "name", str, f"{path}.name", "")
        if not _NAME.fullmatch(name):
            fields.problem(f"{path}.name", "a state name is lower case letters, digits and _")
            continue
        if name in places:
            fields.problem(f"{path}.name", f"state {shown(name)} is declared twice")
        places.setdefault(name, index)
        action = fields.typed(item, "action", str, f"{path}.action", None)
        if action is not None and action not in actions:
            known = ", ".join(sorted(actions))
            fields.problem(f"{path}.action", f"unknown action {shown(action)} (known: {known})")
            action = None
        retry = _retry(fields, item["retry"], f"{path}.retry", reasons) if "retry" in item else None
        if retry is not None and action is None:
            fields.problem(f"{path}.retry", "a state without an action has nothing to retry")
        states.append(
            StateDef(
                name=name,
                action=action,
                final=fields.typed(item, "final", bool, f"{path}.final", False),
                process_local=fields.typed(item, "process_local", bool, f"{path}.process_local", False),
                retry=retry,
            )
        )
    return states, places


def _retry(fields: _Fields, table: Any, path: str, reasons: Mapping[str, int]) -> RetryPolicy | None:
    if not isinstance(table, dict):
        fields.problem(path, "must be a table")
        return None
    fields.unknown_keys(table, {"on", "attempts", "wait", "backoff", "max_wait", "deadline"}, path)
    on = fields.typed(table, "on", list, f"{path}.on", [])
    for reason in on:
        if not isinstance(reason, str) or reason not in reasons:
            fields.problem(f"{path}.on", f"{shown(reason)} is not a declared reason")
    if not on:
        fields.problem(f"{path}.on", "must name at least one reason to retry on")
    # Without wait, backoff and max_wait, tries follow each other at once: a retry that needs no pause.
    attempts = fields.count(table, "attempts", f"{path}.attempts", None)
    wait = fields.number(table, "wait", f"{path}.wait", 0, PAUSE)
    backoff = fields.number(table, "backoff", f"{path}.backoff", 1, BACKOFF)
    max_wait = fields.number(table, "max_wait", f"{path}.max_wait", wait, PAUSE)
    deadline = fields.number(table, "deadline", f"{path}.deadline", None, DURATION)
    if max_wait < wait:
        fields.problem(f"{path}.max_wait", "must be >= wait")
    names = frozenset(reason for reason in on if isinstance(reason, str))
    return RetryPolicy(names, attempts, wait, backoff, max_wait, deadline)


def _transitions(fields: _Fields, items: Any, names: set[str], reasons: Mapping[str, int]) -> list[TransitionDef]:
    if not isinstance(items, list) or not items:
        fields.problem("transitions", "must be a non-empty array of tables")
        return []
    transitions: list[TransitionDef] = []
    taken: dict[tuple[str, str], int] = {}
    for index, item in enumerate(items):
        path = f"transitions[{index}]"
        if not isinstance(item, dict):
            fields.problem(path, "must be a table")
            continue
        fields.unknown_keys(item, {"trigger", "source", "dest", "notify"}, path)
        trigger = fields.typed(item, "trigger", str, f"{path}.trigger", "")
        if trigger != OK and trigger not in reasons:
            fields.problem(f"{path}.trigger", f"must be {OK!r} or a declared reason (found {shown(trigger)})")
        raw_sources = item.get("source")
        sources = [raw_sources] if isinstance(raw_sources, str) else raw_sources
        if not isinstance(sources, list) or not sources or not all(isinstance(s, str) for s in sources):
            fields.problem(f"{path}.source", "must be a state name or a non-empty list of them")
            sources = []
        for source in sources:
            if source not in names:
                fields.problem(f"{path}.source", f"{shown(source)} is not a declared state")
            key = (source, trigger)
            if key in taken:
                fields.problem(
                    f"{path}.source", f"{shown(source)} already has a {shown(trigger)} transition ({taken[key]})"
                )
            taken[key] = index
        dest = fields.typed(item, "dest", str, f"{path}.dest", "")
        if dest not in names:
            fields.problem(f"{path}.dest", f"{shown(dest)} is not a declared state")
        notify = _notify(fields, item.get("notify", []), f"{path}.notify", reasons)
        transitions.append(TransitionDef(trigger, tuple(sources), dest, notify))
    return transitions


def _notify(fields: _Fields, items: Any, path: str, reasons: Mapping[str, int]) -> tuple[Notify, ...]:
    if not isinstance(items, list):
        fields.problem(path, "must be an array of tables")
        return ()
    notifies: list[Notify] = []
    for index, item in enumerate(items):
        where = f"{path}[{index}]"
        if not isinstance(item, dict):
            fields.problem(where, "must be a table")
            continue
        fields.unknown_keys(item, {"endpoint", "status", "reason"}, where)
        endpoint = fields.typed(item, "endpoint", str, f"{where}.endpoint", "")
        if endpoint not in ENDPOINTS:
            fields.problem(f"{where}.endpoint", f"must be one of {', '.join(ENDPOINTS)}")
        status = fields.typed(item, "status", str, f"{where}.status", "")
        if not status:
            fields.problem(f"{where}.status", "must be a non-empty string")
        reason = fields.typed(item, "reason", str, f"{where}.reason", None)
        if reason is not None and reason not in reasons:
            fields.problem(f"{where}.reason", f"{shown(reason)} is not a declared reason")
        notifies.append(Notify(endpoint, status, reason))
    return tuple(notifies)


def _settings(fields: _Fields, table: Any, setting_checks: SettingChecks) -> dict[str, Any]:
    if not isinstance(table, dict):
        fields.problem("settings", "must be a table")
        return {}
    settings: dict[str, Any] = {}
    for key, value in table.items():
        if key not in setting_checks:
            fields.problem(f"settings.{key}", f"unknown setting (known: {', '.join(sorted(setting_checks))})")
            continue
        kinds, check = setting_checks[key]
        if fields.typed(table, key, kinds, f"settings.{key}", None) is None:  # TOML has no null: a wrong kind
            continue
        try:
            check(value)
        except ValueError as exc:
            fields.problem(f"settings.{key}", str(exc))
            continue
        settings[key] = value
    return settings


def _callbacks(fields: _Fields, table: Any) -> CallbackPolicy:
    """The delivery policy of every callback: the definition's own, so every key is required."""
    if not isinstance(table, dict):
        fields.problem("callbacks", "must be a table with timeout, attempts and deadline")
        return CallbackPolicy(DURATION.most, 1, DURATION.most)  # never used: the definition is refused
    fields.unknown_keys(table, {"timeout", "attempts", "deadline"}, "callbacks")
    timeout = fields.number(table, "timeout", "callbacks.timeout", None, DURATION)
    attempts = fields.count(table, "attempts", "callbacks.attempts", None)
    deadline = fields.number(table, "deadline", "callbacks.deadline", None, DURATION)
    return CallbackPolicy(timeout, attempts, deadline)


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "a string", list: "an array"}
    return " or ".join(dict.fromkeys(names.get(kind, kind.__name__) for kind in kinds))
