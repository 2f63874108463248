"""Module loading through real Lmod, called without a shell."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner import envmodules
from tests.conftest import LMOD_CMD, SYSTEM_PATH

BASE = {"PATH": SYSTEM_PATH, "HOME": "/nonexistent"}


@pytest.fixture(scope="module")
def lmod() -> envmodules.ModuleSystem:
    system = envmodules.find({})
    assert system is not None and system.kind == "lmod"
    return system


def test_lmod_is_found_at_its_standard_path_with_nothing_in_the_environment(lmod: envmodules.ModuleSystem) -> None:
    assert lmod.command == (str(LMOD_CMD),)


def test_lmod_cmd_in_the_environment_is_honoured(tmp_path: Path) -> None:
    own = tmp_path / "lmod"
    own.write_text("")
    system = envmodules.find({"LMOD_CMD": str(own)})
    assert system is not None and system.command == (str(own),)


def test_loading_a_module_applies_its_environment(lmod: envmodules.ModuleSystem, module_tree: Path) -> None:
    env = envmodules.purge_and_load(lmod, "JupyterNotebook", {**BASE, "MODULEPATH": str(module_tree)})
    assert env["JUPYTER_MODULE_LOADED"] == "yes"
    assert env["PATH"].split(":")[0].endswith("jupyter-bin")
    assert envmodules.which("jupyter-notebook", env) is not None
    assert env["LOADEDMODULES"] == "JupyterNotebook"


def test_an_unknown_module_fails_with_lmods_message(lmod: envmodules.ModuleSystem, module_tree: Path) -> None:
    with pytest.raises(envmodules.ModuleError, match="unknown"):
        envmodules.purge_and_load(lmod, "NoSuchThing", {**BASE, "MODULEPATH": str(module_tree)})


def test_a_module_that_errors_fails_with_its_message(lmod: envmodules.ModuleSystem, module_tree: Path) -> None:
    with pytest.raises(envmodules.ModuleError, match="broken on purpose"):
        envmodules.purge_and_load(lmod, "Broken", {**BASE, "MODULEPATH": str(module_tree)})


def test_without_modulepath_the_systems_default_paths_are_used(lmod: envmodules.ModuleSystem) -> None:
    """cloud-init and `su -c` shells have no MODULEPATH: Debian's Lmod modulespath file names its own modules."""
    assert "/usr/share/lmod/lmod/modulefiles" in envmodules.default_modulepath(lmod)
    env = envmodules.purge_and_load(lmod, "Core/lmod", dict(BASE))
    assert "Core/lmod" in env["LOADEDMODULES"]


def test_an_init_script_can_provide_the_module_path(
    lmod: envmodules.ModuleSystem, module_tree: Path, tmp_path: Path
) -> None:
    """Like EESSI's init/bash: sourcing it sets MODULEPATH to the stack's modules."""
    script = tmp_path / "init.bash"
    script.write_text(f'export MODULEPATH="{module_tree}"\nexport STACK_VERSION=2023.06\n')
    env = envmodules.source_init_script(script, BASE)
    assert env["STACK_VERSION"] == "2023.06"
    loaded = envmodules.purge_and_load(lmod, "JupyterNotebook", env)
    assert loaded["JUPYTER_MODULE_LOADED"] == "yes"


def test_an_init_script_that_fails_is_an_error(tmp_path: Path) -> None:
    script = tmp_path / "init.bash"
    script.write_text("return 3\n")
    with pytest.raises(envmodules.ModuleError, match="exit code 3"):
        envmodules.source_init_script(script, BASE)


def test_output_is_parsed_not_executed() -> None:
    env = {"GONE": "x", "KEEP": "y"}
    output = 'import os\nos.environ["NEW"] = "a b";\ndel os.environ["GONE"]\n'
    status = envmodules.apply(output + 'os.system("touch /tmp/pwned")\n_mlstatus = True\n', env)
    assert status is True
    assert env == {"KEEP": "y", "NEW": "a b"}
    assert not Path("/tmp/pwned").exists()


def test_mlstatus_false_is_a_failure_even_with_exit_code_zero() -> None:
    """Environment Modules exits 0 on a failed load; only _mlstatus tells."""
    assert envmodules.apply("_mlstatus = False\n", {}) is False


def test_modules_loaded_before_are_purged(lmod: envmodules.ModuleSystem, module_tree: Path) -> None:
    earlier = envmodules.purge_and_load(lmod, "NoJupyter", {**BASE, "MODULEPATH": str(module_tree)})
    assert earlier["NO_JUPYTER_HERE"] == "1"
    env = envmodules.purge_and_load(lmod, "JupyterNotebook", earlier)
    assert env["LOADEDMODULES"] == "JupyterNotebook"
    assert "NO_JUPYTER_HERE" not in env
