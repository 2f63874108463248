"""The state actions: one module per action, named after its state, each with `run(ctx)` and `REASONS`.

`REASONS` lists the failure reasons the action can raise; the loader checks that states.toml gives each of them a
transition and an exit code. The registry is the package itself, so adding an action is adding a module.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache

from provisioner import server
from provisioner.context import RunContext
from provisioner.output import log


@dataclass(frozen=True)
class Action:
    name: str
    run: Callable[[RunContext], None]
    reasons: tuple[str, ...]


@cache
def registry() -> Mapping[str, Action]:
    """Every action in this package, by name."""
    actions: dict[str, Action] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        actions[info.name] = Action(info.name, module.run, tuple(module.REASONS))
    return actions


def reasons() -> Mapping[str, tuple[str, ...]]:
    """Action name -> the reasons it can fail with, as the definition loader wants them."""
    return {name: action.reasons for name, action in registry().items()}


def stop_unfinished(ctx: RunContext) -> bool:
    """Stop the server this provisioning started, unless it was handed over; True if one was stopped.

    A failed or interrupted run leaves no half-provisioned server holding the port.
    """
    if ctx.pid is None or ctx.handed_over:
        return False
    if server.stop(ctx.pid, ctx.process, ctx.pid_start, unit=ctx.unit, exe=ctx.pid_exe):
        log.info("stopped the server this run started (pid %d)", ctx.pid)
        return True
    return False
