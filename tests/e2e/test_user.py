"""--user: started as root, as cloud-init runs it, the server runs as the VM's user with their files."""

from __future__ import annotations

import json
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from tests.helpers.accounts import as_user, traversable
from tests.helpers.cli import cli_env, run_cli, server_execs, traced_cli
from tests.helpers.constants import REAL_JUPYTER, SCRIPT, TOKEN
from tests.helpers.modules import make_bin, write_module
from tests.helpers.net import free_port
from tests.helpers.receiver import CallbackServer


def test_as_root_with_user_the_server_and_its_files_belong_to_the_user(
    researcher: pwd.struct_passwd, callbacks: CallbackServer, reap: Path
) -> None:
    home = Path(researcher.pw_dir)
    modules = home / "modules"  # a module tree the user can read, so that Lmod runs as them
    modules.mkdir()
    write_module(modules, "JupyterNotebook", f'prepend_path("PATH", "{REAL_JUPYTER.parent}")\n')
    env = cli_env(reap, modules, JUPYTER_TOKEN=TOKEN)
    run = run_cli(["run", "--user", researcher.pw_name, "--port", "auto", "--complete-url", callbacks.url("/c")], env)
    assert run.returncode == 0, run.stderr
    assert "running Jupyter as root" not in run.stderr

    out = home / ".jupyter"
    info = json.loads((out / "jupyter_info.json").read_text())
    pid = info["pid"]
    status = Path(f"/proc/{pid}/status").read_text()
    assert f"Uid:\t{researcher.pw_uid}\t" in status
    assert os.readlink(f"/proc/{pid}/cwd") == str(home)
    assert "--allow-root" not in Path(f"/proc/{pid}/cmdline").read_bytes().decode()
    assert (out.stat().st_uid, stat.S_IMODE(out.stat().st_mode)) == (researcher.pw_uid, 0o700)
    for name in ("jupyter_info.txt", "jupyter_info.json", "jupyter.log", "provisioner-state.json", "provisioner-token"):
        info_stat = (out / name).stat()
        assert (info_stat.st_uid, stat.S_IMODE(info_stat.st_mode)) == (researcher.pw_uid, 0o600), name

    # The researcher can look at and stop their own server, without root.
    state = as_user(researcher.pw_name, "state", "--json")
    assert state.returncode == 0, state.stderr
    assert json.loads(state.stdout)["settings"]["user"] == researcher.pw_name
    stopped = as_user(researcher.pw_name, "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert not Path(f"/proc/{pid}").exists() or "State:\tZ" in Path(f"/proc/{pid}/status").read_text(), stopped.stdout
    assert (out / "provisioner-state.json").stat().st_uid == researcher.pw_uid


def test_as_root_with_user_the_token_is_in_the_argv_of_no_program_the_run_executes(
    researcher: pwd.struct_passwd, callbacks: CallbackServer, reap: Path, tmp_path: Path
) -> None:
    """The deployed path: root reads the token, then hands over to a worker and a server running as the account."""
    modules = Path(researcher.pw_dir) / "modules"
    modules.mkdir()
    write_module(modules, "JupyterNotebook", f'prepend_path("PATH", "{REAL_JUPYTER.parent}")\n')
    env = cli_env(reap, modules, JUPYTER_TOKEN=TOKEN)
    args = ["run", "--user", researcher.pw_name, "--port", str(free_port()), "--complete-url", callbacks.url("/c")]
    traced = traced_cli(args, env, tmp_path / "execve")
    assert traced.run.returncode == 0, traced.run.stderr
    port = json.loads((Path(researcher.pw_dir) / ".jupyter" / "jupyter_info.json").read_text())["port"]
    assert len(server_execs(traced, port)) == 1, traced.execs
    assert [line for line in traced.execs if TOKEN in line] == []


def test_user_needs_root_or_an_existing_account(reap: Path) -> None:
    run = run_cli(["run", "--user", "no-such-user"], cli_env(reap, JUPYTER_TOKEN=TOKEN))
    assert run.returncode == 2
    assert "no such user 'no-such-user'" in run.stderr


def test_the_deployed_line_works_unchanged_for_a_real_user(
    researcher: pwd.struct_passwd, callbacks: CallbackServer
) -> None:
    """`su - USER -c "bash -lc 'jupyter_init.sh TOKEN START COMPLETE'"`, exactly as the portal's cloud-init runs it,
    with the drop-in installed beside the provisioner as the wheel installs it, and Lmod set up by the login shell."""
    home = Path(researcher.pw_dir)
    bin_dir = home / "opt" / "bin"  # where a venv's bin would be: jupyter_init.sh next to jupyter-init
    make_bin(bin_dir, {"jupyter-init": Path(sys.executable).with_name("jupyter-init")})
    shutil.copy(SCRIPT, bin_dir / "jupyter_init.sh")
    modules = home / "modules"
    modules.mkdir()
    write_module(modules, "JupyterNotebook", f'prepend_path("PATH", "{REAL_JUPYTER.parent}")\n')
    # A site's profile adds its module tree after /etc/profile.d/lmod.sh has set Lmod up.
    (home / ".profile").write_text(f'export MODULEPATH="{modules}:$MODULEPATH"\n')
    for path in (bin_dir.parent, bin_dir, modules, home / ".profile"):
        os.chown(path, researcher.pw_uid, researcher.pw_gid)

    line = shlex.join([str(bin_dir / "jupyter_init.sh"), TOKEN, callbacks.url("/start"), callbacks.url("/complete")])
    completed = subprocess.run(
        ["su", "-", researcher.pw_name, "-c", f"bash -lc {shlex.quote(line)}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert [form["status"] for form in callbacks.wait_for(1, "/complete")] == ["init_completed"]
    assert [form["status"] for form in callbacks.forms("/start")] == ["init_started"]
    info = json.loads((home / ".jupyter" / "jupyter_info.json").read_text())
    assert info["port"] == 8008  # the spec's port: nothing else here binds it
    assert f"Uid:\t{researcher.pw_uid}\t" in Path(f"/proc/{info['pid']}/status").read_text()
    assert "running Jupyter as root" not in completed.stderr


def test_an_account_runs_a_python_whose_link_leads_into_a_directory_only_root_enters(
    researcher: pwd.struct_passwd, tmp_path: Path
) -> None:
    """A venv's python is a link to the interpreter it was made from, which may sit in a 0700 home (a pyenv in
    root's): the account must be let through the directories the link leads to, not only the link's own."""
    private = tmp_path / "private"
    private.mkdir()
    private.chmod(0o700)
    (private / "python3").symlink_to(os.path.realpath(sys.executable))
    venv_python = tmp_path / "venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.symlink_to(private / "python3")

    with traversable(venv_python):
        ran = subprocess.run(
            ["runuser", "-u", researcher.pw_name, "--", str(venv_python), "-c", "print('ran')"],
            capture_output=True,
            text=True,
            check=False,
            cwd="/",
        )
    assert (ran.returncode, ran.stdout) == (0, "ran\n"), ran.stderr
    assert stat.S_IMODE(private.stat().st_mode) == 0o700  # closed again afterwards
