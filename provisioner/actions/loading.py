"""loading: `module purge; module load NAME` through the machine's module system, then find the Jupyter program
(jupyter-notebook, or jupyter-lab with --app lab).

As root for a user, this runs in the worker (privsep), with the user's rights: their modules, their init script.
"""

from __future__ import annotations

from provisioner import envmodules
from provisioner.context import RunContext
from provisioner.errors import StepFailed
from provisioner.jupyter import BESIDE, base_environment, find_jupyter, program
from provisioner.output import log

REASONS = ("module_load_failed", "jupyter_not_found")


def run(ctx: RunContext) -> None:
    settings = ctx.settings
    env = base_environment(settings)
    try:
        if settings.init_script is not None:
            env = envmodules.source_init_script(settings.init_script, env)
        if settings.module:
            env = _load(settings.module, env, program(settings))
    except envmodules.ModuleError as exc:
        raise StepFailed("module_load_failed", f"module load {settings.module} failed: {exc}") from None
    ctx.env = env
    ctx.jupyter = find_jupyter(env, settings.module, program(settings))
    if ctx.jupyter is None:
        where = f"after module load {settings.module}" if settings.module else f"with no module loaded, nor in {BESIDE}"
        raise StepFailed("jupyter_not_found", f"{program(settings)} is not on PATH {where}")


def _load(name: str, env: dict[str, str], jupyter: str) -> dict[str, str]:
    system = envmodules.find(env)
    if system is None:
        if envmodules.which(jupyter, env) is not None:
            log.warning("warning: no module system found; using %s from PATH without loading %s", jupyter, name)
            return env
        raise envmodules.ModuleError("no module system (Lmod or Environment Modules) found on this machine")
    return envmodules.purge_and_load(system, name, env)
