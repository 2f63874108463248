"""Module loading through real Lmod and real Environment Modules, called without a shell."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner import envmodules
from tests.helpers.constants import LMOD_CMD, SYSTEM_PATH

BASE = {"PATH": SYSTEM_PATH, "HOME": "/nonexistent"}


Loaded = tuple[envmodules.ModuleSystem, Path]


@pytest.fixture(scope="module")
def lmod() -> envmodules.ModuleSystem:
    system = envmodules.find({})
    assert system is not None and system.kind == "lmod"
    return system


@pytest.fixture(scope="module", params=["lmod", "environment-modules"])
def system_and_tree(
    request: pytest.FixtureRequest, lmod: envmodules.ModuleSystem, module_tree: Path, tcl_module_tree: Path
) -> Loaded:
    """Each module system with its own tree of the same modules: the tests that take this run against both."""
    if request.param == "lmod":
        return lmod, module_tree
    modulecmd_tcl: Path = request.getfixturevalue("modulecmd_tcl")
    tcl = envmodules.find({"MODULES_CMD": str(modulecmd_tcl)})
    assert tcl is not None and tcl.kind == "environment-modules"
    return tcl, tcl_module_tree


def test_lmod_is_found_at_its_standard_path_with_nothing_in_the_environment(lmod: envmodules.ModuleSystem) -> None:
    assert lmod.command == (str(LMOD_CMD),)


def test_lmod_cmd_in_the_environment_is_honoured(tmp_path: Path) -> None:
    own = tmp_path / "lmod"
    own.write_text("")
    system = envmodules.find({"LMOD_CMD": str(own)})
    assert system is not None and system.command == (str(own),)


def test_environment_modules_is_found_from_modules_cmd_with_its_own_modulespath(modulecmd_tcl: Path) -> None:
    system = envmodules.find({"MODULES_CMD": str(modulecmd_tcl)})
    assert system is not None and system.command == ("tclsh", str(modulecmd_tcl))
    assert system.modulespath_files[0] == Path("/opt/environment-modules/etc/environment-modules/modulespath")


def test_loading_a_module_applies_its_environment(system_and_tree: Loaded) -> None:
    system, tree = system_and_tree
    env = envmodules.purge_and_load(system, "JupyterNotebook", {**BASE, "MODULEPATH": str(tree)})
    assert env["JUPYTER_MODULE_LOADED"] == "yes"
    assert env["PATH"].split(":")[0].endswith("jupyter-bin")
    assert envmodules.which("jupyter-notebook", env) is not None
    assert env["LOADEDMODULES"] == "JupyterNotebook"


def test_lmod_loads_without_asking_a_terminal_its_width(
    lmod: envmodules.ModuleSystem, module_tree: Path, tmp_path: Path
) -> None:
    """It has none (its output is a pipe): a shell and `stty size` for every load only to find 80 columns."""
    asked = tmp_path / "asked"
    stty = tmp_path / "bin" / "stty"
    stty.parent.mkdir()
    stty.write_text(f"#!/bin/sh\ntouch {asked}\nexit 1\n")
    stty.chmod(0o755)
    environ = {**BASE, "PATH": f"{stty.parent}:{SYSTEM_PATH}", "MODULEPATH": str(module_tree)}
    env = envmodules.purge_and_load(lmod, "JupyterNotebook", environ)
    assert env["JUPYTER_MODULE_LOADED"] == "yes"
    assert not asked.exists()
    assert "LMOD_TERM_WIDTH" not in env  # for Lmod's own run only: nothing the server inherits


def test_an_unknown_module_fails_with_the_systems_message(system_and_tree: Loaded) -> None:
    """Environment Modules exits 0 here: only _mlstatus tells that the load failed."""
    system, tree = system_and_tree
    with pytest.raises(envmodules.ModuleError, match=r"(?i)unknown|unable to locate"):
        envmodules.purge_and_load(system, "NoSuchThing", {**BASE, "MODULEPATH": str(tree)})


def test_a_module_that_errors_fails_with_its_message(system_and_tree: Loaded) -> None:
    system, tree = system_and_tree
    with pytest.raises(envmodules.ModuleError, match="broken on purpose"):
        envmodules.purge_and_load(system, "Broken", {**BASE, "MODULEPATH": str(tree)})


def test_modules_loaded_before_are_purged(system_and_tree: Loaded) -> None:
    system, tree = system_and_tree
    earlier = envmodules.purge_and_load(system, "NoJupyter", {**BASE, "MODULEPATH": str(tree)})
    assert earlier["NO_JUPYTER_HERE"] == "1"
    env = envmodules.purge_and_load(system, "JupyterNotebook", earlier)
    assert env["LOADEDMODULES"] == "JupyterNotebook"
    assert "NO_JUPYTER_HERE" not in env


def test_an_init_script_can_provide_the_module_path(system_and_tree: Loaded, tmp_path: Path) -> None:
    """Like EESSI's init/bash: sourcing it sets MODULEPATH to the stack's modules."""
    system, tree = system_and_tree
    script = tmp_path / "init.bash"
    script.write_text(f'export MODULEPATH="{tree}"\nexport STACK_VERSION=2023.06\n')
    env = envmodules.source_init_script(script, BASE)
    assert env["STACK_VERSION"] == "2023.06"
    loaded = envmodules.purge_and_load(system, "JupyterNotebook", env)
    assert loaded["JUPYTER_MODULE_LOADED"] == "yes"


def test_without_modulepath_the_systems_default_paths_are_used(lmod: envmodules.ModuleSystem) -> None:
    """cloud-init and `su -c` shells have no MODULEPATH: Debian's Lmod modulespath file names its own modules."""
    assert "/usr/share/lmod/lmod/modulefiles" in envmodules.default_modulepath(lmod)
    env = envmodules.purge_and_load(lmod, "Core/lmod", dict(BASE))
    assert "Core/lmod" in env["LOADEDMODULES"]


def test_without_modulepath_or_default_directories_the_load_says_so(tmp_path: Path) -> None:
    system = envmodules.ModuleSystem("environment-modules", ("tclsh", "/x"), (tmp_path / "no-modulespath",))
    with pytest.raises(envmodules.ModuleError, match="no MODULEPATH"):
        envmodules.purge_and_load(system, "JupyterNotebook", dict(BASE))


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
    assert envmodules.apply("_mlstatus = False\n", {}) is False


def test_a_module_value_that_is_not_utf8_is_a_failure_not_a_traceback(
    lmod: envmodules.ModuleSystem, tmp_path: Path
) -> None:
    """A module file is the site's (or, with ~/.modulerc, the account's): bytes that are not text are data too."""
    (tmp_path / "Odd.lua").write_bytes(b'setenv("ODD_PATH", "/opt/caf\\xe9")\n')
    with pytest.raises(envmodules.ModuleError, match="printed output we cannot read"):
        envmodules.purge_and_load(lmod, "Odd", {**BASE, "MODULEPATH": str(tmp_path)})
