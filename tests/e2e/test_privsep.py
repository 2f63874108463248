"""Root acting for a user: the account is not trusted by root, so everything it can write is attacker input.

Every attack here is made by a real second account with real links, FIFOs, edited records and races, against the
CLI run as root, as cloud-init runs it. Each checks that the victim (a root file, a root directory, a root process)
is unchanged, that nothing the account chose ran as root, and that the run ended with a clear line and its
documented exit code, or succeeded safely.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from provisioner import server
from provisioner.exits import ExitCode, Status
from tests.helpers.accounts import Researcher, account, servers_of
from tests.helpers.cli import Run, cli_env, cmdlines, run_cli, start_cli, stop_servers
from tests.helpers.constants import CHECKOUT, REAL_JUPYTER, SYSTEM_PATH, TOKEN
from tests.helpers.modules import make_bin, write_module
from tests.helpers.net import free_port
from tests.helpers.receiver import CallbackServer
from tests.helpers.systemd import FAKE_SYSTEMCTL, FAKE_SYSTEMD_RUN

SECRET = "root-only-" + "9f8e7d6c5b" * 4  # what a root-only file holds: must never reach the account


@dataclass
class Victim:
    """A root file the account can reach but not write (like /etc/shadow's neighbours), and a root-only secret."""

    directory: Path
    file: Path
    secret: Path

    def fingerprint(self) -> list[tuple[str, int, int, int]]:
        """Content, owner, group and mode of everything in the victim's directory."""
        rows = []
        for path in sorted(self.directory.iterdir()):
            info = path.lstat()
            content = path.read_text() if stat.S_ISREG(info.st_mode) else ""
            rows.append((f"{path.name}:{content}", info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)))
        return rows


@pytest.fixture
def victim() -> Iterator[Victim]:
    directory = Path(tempfile.mkdtemp(prefix="victim-"))
    directory.chmod(0o755)
    file = directory / "passwd-like"
    file.write_text("root:x:0:0:root:/root:/bin/bash\n")
    file.chmod(0o644)
    secret = directory / "secret"
    secret.write_text(SECRET)
    secret.chmod(0o600)
    yield Victim(directory, file, secret)
    shutil.rmtree(directory)


def as_root(args: list[str], home: Path, env: dict[str, str] | None = None, timeout: float = 120) -> Run:
    """The CLI as root, as cloud-init runs it: Jupyter on PATH (the self-contained install), no module."""
    return run_cli(args, cli_env(home, path=f"{REAL_JUPYTER.parent}:{SYSTEM_PATH}") | (env or {}), timeout=timeout)


def run_for(user: Researcher, home: Path, *extra: str) -> Run:
    args = ["run", "--user", user.account.pw_name, "--module", "", "--port", "auto", *extra]
    return as_root(args, home, {"JUPYTER_TOKEN": TOKEN})


def one_line_error(run: Run) -> None:
    assert "Traceback" not in run.stderr, run.stderr
    assert run.stderr.strip(), "a failure says why"


def test_a_log_linked_to_a_root_file_is_not_written_through(
    user: Researcher, victim: Victim, callbacks: CallbackServer, reap: Path
) -> None:
    before = victim.fingerprint()
    user.plant_link("jupyter.log", victim.file)
    run = run_for(user, reap, "--complete-url", callbacks.url("/c"))
    assert run.returncode == 15, run.stderr
    one_line_error(run)
    assert "jupyter.log: it is a symbolic link, not a file" in run.stderr
    assert [(f["status"], f["reason"]) for f in callbacks.wait_for(1, "/c")] == [("failed", "output_unwritable")]
    assert victim.fingerprint() == before
    assert servers_of(user) == []


def test_a_lock_linked_to_a_root_file_is_neither_truncated_nor_taken(
    user: Researcher, victim: Victim, callbacks: CallbackServer, reap: Path
) -> None:
    before = victim.fingerprint()
    user.plant_link("provisioner.lock", victim.file)
    run = run_for(user, reap, "--start-url", callbacks.url("/s"))
    assert run.returncode == 15, run.stderr
    one_line_error(run)
    assert "cannot record the run" in run.stderr
    assert [(f["status"], f["reason"]) for f in callbacks.wait_for(1, "/s")] == [("failed", "output_unwritable")]
    assert servers_of(user) == []
    # An operator's `stop` as root on the same directory does not truncate it either.
    stopped = as_root(["stop", "--output-dir", str(user.out)], reap)
    assert stopped.returncode == 2, stopped.stderr
    one_line_error(stopped)
    assert victim.fingerprint() == before


def test_an_output_directory_linked_to_a_root_directory_stays_roots(
    user: Researcher, victim: Victim, reap: Path
) -> None:
    before = victim.fingerprint()
    directory_before = victim.directory.stat()
    user.out.symlink_to(victim.directory)
    user.own(user.out)
    run = run_for(user, reap)
    assert run.returncode == 15, run.stderr
    one_line_error(run)
    after = victim.directory.stat()
    assert (after.st_uid, after.st_mode) == (directory_before.st_uid, directory_before.st_mode)
    assert victim.fingerprint() == before  # nothing written in it, nothing changed hands


def failed_run(user: Researcher, home: Path) -> Run:
    """A first run as root that fails fast (an unknown module, with Lmod) and leaves a record and a kept token."""
    run = run_cli(
        ["run", "--user", user.account.pw_name, "--module", "no-such-module", "--port", "auto"],
        cli_env(home, path=SYSTEM_PATH, JUPYTER_TOKEN=TOKEN),
    )
    assert run.returncode == 11, run.stderr
    assert (user.out / "provisioner-state.json").stat().st_uid == user.account.pw_uid
    return run


def test_an_edited_record_runs_nothing_as_root(user: Researcher, reap: Path) -> None:
    """The account points the record's init script at its own script and clears its user: root's resume runs the
    script, and then the server, as the account."""
    failed_run(user, reap)
    script = user.home / "evil.sh"
    script.write_text(f"id -u > {user.home}/ran-as\n")
    user.own(script)
    user.edit_record(settings__init_script=str(script), settings__user=None, settings__module="")
    resumed = as_root(["resume", "--output-dir", str(user.out)], reap)
    assert resumed.returncode == 0, resumed.stderr
    assert (user.home / "ran-as").read_text().strip() == str(user.account.pw_uid)
    [pid] = servers_of(user)
    assert f"Uid:\t{user.account.pw_uid}\t" in Path(f"/proc/{pid}/status").read_text()
    assert "--allow-root" not in Path(f"/proc/{pid}/cmdline").read_text()


def test_a_record_naming_another_account_is_refused(user: Researcher, reap: Path) -> None:
    failed_run(user, reap)
    user.edit_record(settings__user="root")
    resumed = as_root(["resume", "--output-dir", str(user.out)], reap)
    assert resumed.returncode == 2, resumed.stderr
    one_line_error(resumed)
    assert "the recorded settings cannot be used" in resumed.stderr
    assert servers_of(user) == []


@contextlib.contextmanager
def sleeper(*prefix: str) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([*prefix, "sleep", "300"], start_new_session=True)
    try:
        time.sleep(0.2)  # runuser has exec'd or forked its sleep
        yield process
    finally:
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def child_of(pid: int) -> int:
    """The one child of `pid` (runuser's sleep: the account's own process)."""
    [child] = [int(p) for p in subprocess.check_output(["pgrep", "-P", str(pid)]).split()]
    return child


def test_stop_signals_only_the_accounts_recorded_server(user: Researcher, reap: Path) -> None:
    """A record edited to name a root process, or another process of the account's, stops neither."""
    failed_run(user, reap)
    with sleeper() as roots, sleeper("runuser", "-u", user.account.pw_name, "--") as theirs:
        their_sleep = child_of(theirs.pid)
        for pid, exe in ((roots.pid, None), (their_sleep, str(REAL_JUPYTER))):
            user.edit_record(server={"pid": pid, "start_time": server.start_time(pid), "exe": exe, "port": 1})
            stopped = as_root(["stop", "--output-dir", str(user.out), "--grace", "1"], reap)
            assert stopped.returncode == 0, stopped.stderr
            assert "is not running; nothing to stop" in stopped.stdout
        assert roots.poll() is None
        assert theirs.poll() is None
        os.kill(their_sleep, 0)  # still there: raises if it was stopped


def test_a_kept_token_linked_to_a_root_secret_is_not_read_on_resume(
    user: Researcher, victim: Victim, reap: Path
) -> None:
    failed_run(user, reap)
    user.plant_link("provisioner-token", victim.secret)
    resumed = as_root(["resume", "--output-dir", str(user.out)], reap)
    assert resumed.returncode == 2, resumed.stderr
    one_line_error(resumed)
    assert "the token kept in" in resumed.stderr and "symbolic link" in resumed.stderr
    assert SECRET not in resumed.stdout + resumed.stderr
    files = [path for path in user.out.iterdir() if path.is_file() and not path.is_symlink()]
    assert "provisioner-state.json" in [path.name for path in files]
    assert [path for path in files if SECRET in path.read_text(errors="replace")] == []
    assert servers_of(user) == []


def make_fifo(user: Researcher, name: str) -> Path:
    path = user.make_out() / name
    os.mkfifo(path, 0o600)
    user.own(path)
    return path


def test_a_fifo_planted_as_the_log_fails_the_run_at_once(user: Researcher, reap: Path) -> None:
    make_fifo(user, "jupyter.log")
    run = run_for(user, reap)  # run_cli's timeout turns a hang into a failure
    assert run.returncode == 15, run.stderr
    assert "jupyter.log: it is not a regular file" in run.stderr
    assert servers_of(user) == []


def test_an_output_directory_the_account_made_read_only_fails_before_any_server_starts(
    user: Researcher, reap: Path, callbacks: CallbackServer
) -> None:
    """Without a record no `stop` or `state` could find the server: none is started."""
    user.make_out().chmod(0o500)
    run = run_for(user, reap, "--start-url", callbacks.url("/start"))
    assert run.returncode == 15, run.stderr
    assert "cannot record the run" in run.stderr
    one_line_error(run)
    assert servers_of(user) == []
    assert [(f["status"], f["reason"]) for f in callbacks.wait_for(1, "/start")] == [("failed", "output_unwritable")]


def test_a_fifo_planted_as_the_kept_token_fails_resume_at_once(user: Researcher, reap: Path) -> None:
    failed_run(user, reap)
    (user.out / "provisioner-token").unlink()
    make_fifo(user, "provisioner-token")
    resumed = as_root(["resume", "--output-dir", str(user.out)], reap, timeout=30)
    assert resumed.returncode == 2, resumed.stderr
    assert "it is not a regular file" in resumed.stderr


@pytest.mark.parametrize("kind", ["fifo", "huge"])
def test_a_fifo_or_a_huge_file_as_the_record_is_set_aside_not_read(user: Researcher, reap: Path, kind: str) -> None:
    if kind == "fifo":
        make_fifo(user, "provisioner-state.json")
    else:
        huge = user.make_out() / "provisioner-state.json"
        with huge.open("wb") as handle:
            handle.truncate(512 * 1024 * 1024)  # sparse: costs no disk
        user.own(huge)
    run = run_cli(
        ["run", "--user", user.account.pw_name, "--module", "no-such-module", "--port", "auto"],
        cli_env(reap, path=SYSTEM_PATH, JUPYTER_TOKEN=TOKEN),
        timeout=30,
    )
    assert run.returncode == 11, run.stderr  # the run went on to its own failure: no such module
    expected = "not a regular file" if kind == "fifo" else "larger than"
    assert expected in run.stderr
    assert json.loads((user.out / "provisioner-state.json").read_text())["outcome"] == "failed"


def test_root_inputs_that_are_not_files_are_refused_without_reading(reap: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "token-fifo"
    os.mkfifo(fifo)
    run = run_cli(["run", "--token-file", str(fifo)], cli_env(reap), timeout=30)
    assert run.returncode == 2, run.stderr
    assert "--token-file: cannot read" in run.stderr and "not a regular file" in run.stderr
    states = run_cli(["check", "--states", str(fifo)], cli_env(reap), timeout=30)
    assert states.returncode == 3, states.stderr
    assert "not a regular file" in states.stderr
    # A device anyone may write (/dev/zero is 0666) is refused before it is opened.
    zero = run_cli(["check", "--states", "/dev/zero"], cli_env(reap), timeout=30)
    assert zero.returncode == 2, zero.stderr
    assert "'/dev/zero' can be changed by any account (through its group, an ACL or its mode)" in zero.stderr


@pytest.mark.parametrize(
    "names",
    [
        ("provisioner-state.json", "jupyter_info.txt", "jupyter_info.json", "provisioner-token"),
        ("provisioner-state.json", "jupyter_info.txt", "jupyter_info.json", "provisioner-token", "jupyter.log"),
    ],
    ids=["files-written-whole", "every-file"],
)
def test_a_race_swapping_links_in_the_output_directory_gains_nothing(
    user: Researcher, victim: Victim, reap: Path, names: tuple[str, ...]
) -> None:
    before = victim.fingerprint()
    user.make_out()
    loop = f"for f in {' '.join(names)}; do ln -sfn {victim.file} $f 2>/dev/null; done"
    racer = subprocess.Popen(
        ["runuser", "-u", user.account.pw_name, "--", "bash", "-c", f"cd {user.out}; while :; do {loop}; done"],
        start_new_session=True,
    )
    try:
        run = run_for(user, reap)
    finally:
        os.killpg(racer.pid, signal.SIGKILL)
        racer.wait()
    if run.returncode:
        one_line_error(run)
    # Files written whole (temporary file, rename) replace a link; the log is never opened through one.
    assert run.returncode == 0 if "jupyter.log" not in names else run.returncode in (0, 15), run.stderr
    assert victim.fingerprint() == before
    servers = servers_of(user)
    assert len(servers) == (1 if run.returncode == 0 else 0), servers  # a refused run starts nothing
    for pid in servers:
        assert f"Uid:\t{user.account.pw_uid}\t" in Path(f"/proc/{pid}/status").read_text()


def test_root_without_user_refuses_a_directory_the_account_owns(user: Researcher, reap: Path) -> None:
    user.make_out()
    run = as_root(["run", "--output-dir", str(user.out), "--module", ""], reap, {"JUPYTER_TOKEN": TOKEN})
    assert run.returncode == 2, run.stderr
    assert f"give --user {user.account.pw_name}" in run.stderr
    assert list(user.out.iterdir()) == []


def test_root_refuses_a_root_directory_others_can_change(reap: Path) -> None:
    shared = Path(tempfile.mkdtemp(prefix="shared-"))
    try:
        shared.chmod(0o777)  # no sticky bit: anyone may swap what is in it
        run = as_root(["state", "--output-dir", str(shared / "out")], reap)
        assert run.returncode == 2, run.stderr
        assert "can be changed by any account (through its group, an ACL or its mode)" in run.stderr
    finally:
        shutil.rmtree(shared)


def test_with_systemd_root_starts_and_stops_only_the_accounts_unit(
    user: Researcher, reap: Path, tmp_path: Path, callbacks: CallbackServer
) -> None:
    fakes = make_bin(tmp_path / "fake-systemd", {"systemd-run": FAKE_SYSTEMD_RUN, "systemctl": FAKE_SYSTEMCTL})
    units = tmp_path / "units"
    units.mkdir()
    system_dir = tmp_path / "var-lib-provisioner"
    env = {"FAKE_SYSTEMD_DIR": str(units), "PROVISIONER_SYSTEM_DIR": str(system_dir)}
    path = f"{fakes}:{REAL_JUPYTER.parent}:{SYSTEM_PATH}"
    args = ["run", "--user", user.account.pw_name, "--launcher", "systemd", "--module", "", "--port", "auto"]
    run = run_cli([*args, "--complete-url", callbacks.url("/c")], cli_env(reap, path=path, JUPYTER_TOKEN=TOKEN) | env)
    assert run.returncode == 0, run.stderr
    [pid] = servers_of(user)
    assert f"Uid:\t{user.account.pw_uid}\t" in Path(f"/proc/{pid}/status").read_text()
    env_file = system_dir / f"{user.account.pw_name}.env"
    info = env_file.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o400)
    assert f'JUPYTER_TOKEN="{TOKEN}"' in env_file.read_text()
    assert not (user.out / "jupyter.env").exists()
    log = user.out / "jupyter.log"
    assert log.stat().st_uid == user.account.pw_uid and "Jupyter Server" in log.read_text()

    # The account edits the record to name a unit of root's: the monitor will not stop it.
    with sleeper() as roots:
        other = "jupyter-notebook-0-1.service"
        (units / other).write_text(json.dumps({"MainPID": roots.pid, "User": ""}))
        record = json.loads((user.out / "provisioner-state.json").read_text())
        user.edit_record(server__unit=other)
        stopped = run_cli(["stop", "--output-dir", str(user.out)], cli_env(reap, path=path) | env)
        assert stopped.returncode == 0, stopped.stderr
        assert roots.poll() is None
        assert servers_of(user) == []  # its own server stopped all the same, with the account's rights
    assert record["server"]["unit"] == f"jupyter-notebook-{user.account.pw_name}-{record['port']}.service"


def test_sigterm_to_roots_process_stops_the_run_and_is_recorded(user: Researcher, reap: Path) -> None:
    script = user.home / "slow.sh"
    script.write_text("sleep 30\n")
    user.own(script)
    env = cli_env(reap, path=f"{REAL_JUPYTER.parent}:{SYSTEM_PATH}", JUPYTER_TOKEN=TOKEN)
    args = ["run", "--user", user.account.pw_name, "--module", "", "--port", "auto", "--init-script", str(script)]
    process = start_cli(args, env)
    deadline = time.monotonic() + 30
    while (
        time.monotonic() < deadline
        and "sleep 30"
        not in subprocess.run(
            ["pgrep", "-a", "-u", user.account.pw_name, "sleep"], capture_output=True, text=True, check=False
        ).stdout
    ):
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "interrupted by SIGTERM" in stderr
    record = json.loads((user.out / "provisioner-state.json").read_text())
    assert record["outcome"] == "interrupted" and record["state"] == "loading"
    assert servers_of(user) == []
    # The worker, with the account's rights, wrote the record.
    assert (user.out / "provisioner-state.json").stat().st_uid == user.account.pw_uid


def test_root_reads_no_input_that_the_account_can_change(user: Researcher, reap: Path) -> None:
    """A definition or a token file the account could edit would let it choose what root runs, and as whom."""
    token_file = user.home / "token"
    token_file.write_text(TOKEN)
    user.own(token_file)
    run = as_root(["run", "--user", user.account.pw_name, "--token-file", str(token_file)], reap)
    assert run.returncode == 2, run.stderr
    assert f"--token-file: '{token_file}' is {user.account.pw_name}'s" in run.stderr
    states = user.home / "states.toml"
    shutil.copy(CHECKOUT / "states.toml", states)
    user.own(states)
    checked = as_root(["check", "--states", str(states)], reap)
    assert checked.returncode == 2, checked.stderr
    assert f"--states: '{states}' is {user.account.pw_name}'s" in checked.stderr
    assert servers_of(user) == []


@pytest.fixture
def sticky_dir() -> Iterator[Path]:
    """A root-owned directory every account may add to, as /tmp and /dev/shm are (sticky, 1777)."""
    directory = Path(tempfile.mkdtemp(prefix="sticky-"))
    directory.chmod(0o1777)
    yield directory
    shutil.rmtree(directory)


def plant_record(user: Researcher, directory: Path, **record: object) -> Path:
    """A record, a kept token and a script of the account's, in `directory`: what root must not act on as root."""
    script = directory / "evil.sh"
    script.write_text(f"id -u > {directory}/ran-as\n")
    state = directory / "provisioner-state.json"
    state.write_text(json.dumps({"schema": 1, "state": "idle", "history": [], **record}))
    (directory / "provisioner-token").write_text(TOKEN)
    for path in (script, state, directory / "provisioner-token"):
        path.chmod(0o755)
        user.own(path)
    return script


@pytest.mark.parametrize("via", ["link", "direct"])
def test_root_will_not_act_as_root_in_a_directory_every_account_may_write(
    user: Researcher, sticky_dir: Path, reap: Path, via: str
) -> None:
    """The account plants a record whose init script is its own in /dev/shm-like space, and points root at it."""
    script = plant_record(user, sticky_dir, settings={"module": "", "init_script": str(sticky_dir / "evil.sh")})
    if via == "link":
        user.out.symlink_to(sticky_dir)
        user.own(user.out)
    target = user.out if via == "link" else sticky_dir
    for verb in (["resume"], ["stop"], ["state"]):
        run = as_root([*verb, "--output-dir", str(target)], reap)
        assert run.returncode == 2, (verb, run.stdout, run.stderr)
        one_line_error(run)
        expected = "is a link another account could have made" if via == "link" else "can be changed by "
        assert expected in run.stderr
    assert not (sticky_dir / "ran-as").exists(), f"{script} ran"
    assert servers_of(user) == []


@pytest.mark.parametrize("target", ["another account's directory", "a process's root"])
def test_a_link_to_somewhere_else_decides_nothing_for_roots_verbs(
    user: Researcher, reap: Path, callbacks: CallbackServer, target: str
) -> None:
    with account() as victim2, sleeper("runuser", "-u", victim2.pw_name, "--") as runuser:
        their_sleep = child_of(runuser.pid)
        theirs = Path(victim2.pw_dir) / ".jupyter"
        theirs.mkdir(mode=0o700)
        record = {"schema": 1, "state": "ready", "outcome": "ready", "history": []}
        record["server"] = {"pid": their_sleep, "start_time": server.start_time(their_sleep), "port": 1}
        (theirs / "provisioner-state.json").write_text(json.dumps(record))
        for path in (theirs, theirs / "provisioner-state.json"):
            os.chown(path, victim2.pw_uid, victim2.pw_gid)
        link_to = theirs if target == "another account's directory" else Path(f"/proc/{their_sleep}/root{theirs}")
        user.out.symlink_to(link_to)
        user.own(user.out)
        for verb in (["stop"], ["state"], ["resume"]):
            run = as_root([*verb, "--output-dir", str(user.out)], reap)
            assert run.returncode == 2, (verb, run.stdout, run.stderr)
            assert "is a link another account could have made" in run.stderr
        os.kill(their_sleep, 0)  # victim2's process is still there


def test_an_account_that_stops_its_worker_again_and_again_does_not_hold_root(user: Researcher, reap: Path) -> None:
    """SIGSTOP is the account's to send to its own processes; root's run must end all the same, with a clear line."""
    script = user.home / "slow.sh"
    script.write_text("sleep 60\n")
    user.own(script)
    env = cli_env(reap, path=f"{REAL_JUPYTER.parent}:{SYSTEM_PATH}", JUPYTER_TOKEN=TOKEN)
    args = ["run", "--user", user.account.pw_name, "--module", "", "--init-script", str(script)]
    monitor = start_cli(args, env)
    worker = None
    deadline = time.monotonic() + 30
    while worker is None and time.monotonic() < deadline:
        children = subprocess.run(["pgrep", "-P", str(monitor.pid)], capture_output=True, text=True, check=False)
        worker = int(children.stdout.split()[0]) if children.stdout.split() else None
    assert worker is not None
    for _ in range(10):  # as the account's loop would: stop it whenever it runs
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker, signal.SIGSTOP)
        time.sleep(0.3)
        if monitor.poll() is not None:
            break
    _, stderr = monitor.communicate(timeout=30)
    assert monitor.returncode == ExitCode.MONITOR, stderr
    assert f"running as {user.account.pw_name} (pid {worker}) was stopped by a signal 3 times; it was killed" in stderr
    assert "Traceback" not in stderr


BAD_RECORDS = {
    "server is text": {"server": "x"},
    "history of numbers": {"history": [1]},
    "history is text": {"history": "abc"},
    "failure is text": {"failure": "x"},
    "callbacks of numbers": {"callbacks": [1]},
    "settings is text": {"settings": "x"},
    "definition is text": {"definition": "x"},
    "state is a list": {"state": ["x"]},
    "pid is text": {"server": {"pid": "1/../self"}},
    "port out of range": {"outcome": "ready", "server": {"pid": 1, "port": 99999}},
    "ip is not one": {"outcome": "ready", "server": {"pid": 1, "port": 8008}, "settings": {"ip": "not-an-ip"}},
    "pid is true": {"server": {"pid": True}},
}


@pytest.mark.parametrize("bad", list(BAD_RECORDS.values()), ids=list(BAD_RECORDS))
def test_a_record_the_account_mangled_is_set_aside_by_every_verb_never_a_traceback(
    user: Researcher, reap: Path, bad: dict[str, object]
) -> None:
    out = user.make_out()
    expected = {"state": Status.NEVER_RUN.exit_code, "stop": 0, "resume": 2, "graph": 0}
    for verb, code in expected.items():
        # Again for each verb: one that holds the lock moves a record it cannot use aside.
        (out / "provisioner-state.json").write_text(json.dumps({"schema": 1, "state": "ready", "history": [], **bad}))
        user.own(out / "provisioner-state.json")
        args = [verb, "--output-dir", str(out)] + (["--current"] if verb == "graph" else [])
        run = as_root(args, reap)
        assert run.returncode == code, (verb, run.stdout, run.stderr)
        assert "Traceback" not in run.stderr, (verb, run.stderr)
        assert "provisioner-state.json" in run.stderr  # said why it was not used


def test_roots_state_shows_escape_sequences_from_the_record_instead_of_sending_them(
    user: Researcher, reap: Path
) -> None:
    out = user.make_out()
    sneaky = "\x1b]0;owned\x07\x1b[2J\x1b[Hstatus: ready (all good)"
    record = {"schema": 1, "state": "ready", "outcome": "failed", "history": [{"state": sneaky, "entered": "x"}]}
    (out / "provisioner-state.json").write_text(json.dumps(record))
    user.own(out / "provisioner-state.json")
    run = as_root(["state", "--output-dir", str(out)], reap)
    assert run.returncode == Status.FAILED.exit_code, run.stderr
    assert "\x1b" not in run.stdout and "\x07" not in run.stdout
    assert "\\x1b[2J" in run.stdout


def test_the_token_goes_only_to_the_servers_own_socket(user: Researcher, reap: Path) -> None:
    """Another account listens on the server's port (visible in ps) before Jupyter binds it, hoping for the token."""
    port = free_port()
    heard: list[bytes] = []

    def squat() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(f"--port={port}" in line for line in cmdlines()):
            time.sleep(0.002)
        with socket.socket() as listener:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", port))
            listener.listen()
            listener.settimeout(4)
            with contextlib.suppress(OSError):
                connection, _ = listener.accept()
                with connection:
                    connection.settimeout(2)
                    heard.append(connection.recv(65536))

    squatter = threading.Thread(target=squat)
    squatter.start()
    run = as_root(
        ["run", "--user", user.account.pw_name, "--module", "", "--port", str(port)], reap, {"JUPYTER_TOKEN": TOKEN}
    )
    squatter.join()
    assert TOKEN.encode() not in b"".join(heard)
    assert run.returncode in (0, 13), run.stderr  # ready once the squatter left, or port_in_use: never a leak
    if run.returncode:
        one_line_error(run)


def test_nothing_of_the_accounts_can_reach_roots_terminal(user: Researcher, reap: Path) -> None:
    """Run from root's terminal, the account's init script (or module file) cannot open it to read or type."""
    script = user.home / "tty.sh"
    result = user.home / "tty-result"
    script.write_text(f"if ( : > /dev/tty ) 2>/dev/null; then echo reached > {result}; else echo none > {result}; fi\n")
    user.own(script)
    command = shlex.join(
        [
            sys.executable,
            "-m",
            "provisioner",
            "run",
            "--user",
            user.account.pw_name,
            "--module",
            "no-such-module",
            "--init-script",
            str(script),
        ]
    )
    env = cli_env(reap, path=SYSTEM_PATH, JUPYTER_TOKEN=TOKEN)
    on_a_terminal = subprocess.run(
        ["script", "--quiet", "--return", "--command", command, "/dev/null"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert on_a_terminal.returncode == 11, on_a_terminal.stdout
    assert result.read_text().strip() == "none"


def test_roots_environment_stays_roots_and_the_server_has_the_accounts_groups(user: Researcher, reap: Path) -> None:
    group = f"{user.account.pw_name}g"
    subprocess.run(["groupadd", group], check=True)
    try:
        subprocess.run(["usermod", "-aG", group, user.account.pw_name], check=True)
        check_environment_and_groups(user, reap, grp.getgrnam(group).gr_gid)
    finally:
        stop_servers(user.home)
        subprocess.run(["groupdel", group], check=False)


def check_environment_and_groups(user: Researcher, reap: Path, supplementary: int) -> None:
    run = as_root(
        ["run", "--user", user.account.pw_name, "--module", "", "--port", "auto"],
        reap,
        {"JUPYTER_TOKEN": TOKEN, "ROOT_ONLY_SECRET": "hunter2", "LC_TIME": "C.UTF-8"},
    )
    assert run.returncode == 0, run.stderr
    [pid] = servers_of(user)
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert b"ROOT_ONLY_SECRET=hunter2" not in environ
    assert b"LC_TIME=C.UTF-8" in environ and f"HOME={user.home}".encode() in environ
    status = Path(f"/proc/{pid}/status").read_text()
    [groups] = [line.split()[1:] for line in status.splitlines() if line.startswith("Groups:")]
    assert sorted(map(int, groups)) == sorted({user.account.pw_gid, supplementary})  # initgroups: theirs, not root's


def test_dot_dot_after_a_link_of_the_accounts_is_walked_as_the_kernel_walks_it(
    user: Researcher, reap: Path, sticky_dir: Path
) -> None:
    """~/.jupyter/../../../srv/pj reads as under the account's home, but ~/.jupyter is a link of the account's, and
    `..` after it climbs from where the link leads: a record of the account's, wherever it lives, decides nothing."""
    lab = sticky_dir / "lab"
    (lab / "a" / "b" / "c").mkdir(parents=True)
    (lab / "srv" / "pj").mkdir(parents=True)
    for path in (lab, *lab.rglob("*")):
        user.own(path)
    with sleeper() as roots:
        record = {"outcome": "ready", "server": {"pid": roots.pid, "start_time": server.start_time(roots.pid)}}
        plant_record(user, lab / "srv" / "pj", **record)
        user.out.symlink_to(lab / "a" / "b" / "c")
        user.own(user.out)
        run = as_root(["stop", "--output-dir", f"{user.out}/../../../srv/pj"], reap)
        assert run.returncode == 2, run.stderr
        assert "is a link another account could have made" in run.stderr
        assert roots.poll() is None


def test_a_root_directory_an_acl_opens_to_the_account_is_not_roots_alone(user: Researcher, reap: Path) -> None:
    directory = Path(tempfile.mkdtemp(prefix="acl-"))
    try:
        directory.chmod(0o755)
        subprocess.run(["setfacl", "-m", f"u:{user.account.pw_name}:rwx", str(directory)], check=True)
        run = as_root(["state", "--output-dir", str(directory)], reap)
        assert run.returncode == 2, run.stderr
        assert "can be changed by any account (through its group, an ACL or its mode)" in run.stderr
    finally:
        shutil.rmtree(directory)


def test_a_proc_link_that_leads_elsewhere_than_it_reads_is_refused(reap: Path, tmp_path: Path) -> None:
    """/proc/PID/cwd of a process in another mount namespace names a directory here, but leads to another."""
    shown, real = tmp_path / "shown", tmp_path / "real"
    shown.mkdir()
    real.mkdir()
    inside = f"mount --bind {real} {shown} && cd {shown} && exec sleep 60"
    elsewhere = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", inside])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and os.readlink(f"/proc/{elsewhere.pid}/cwd") != str(shown):
            time.sleep(0.02)
        run = as_root(["state", "--output-dir", f"/proc/{elsewhere.pid}/cwd"], reap)
        assert run.returncode == 2, run.stderr
        assert "leads elsewhere than it reads" in run.stderr
    finally:
        elsewhere.kill()
        elsewhere.wait()


ODD_BUT_WELL_TYPED = {
    "failure without its fields": {"outcome": "failed", "failure": {"x": "y"}},
    "a final state passed through": {
        "outcome": "failed",
        "failure": {"state": "verifying", "reason": "failed_to_start", "message": "m"},
        "history": [
            {"state": "ready", "outcome": "ok"},
            {"outcome": "ok"},
            {"state": "verifying", "outcome": "failed"},
        ],
    },
}


@pytest.mark.parametrize("odd", list(ODD_BUT_WELL_TYPED.values()), ids=list(ODD_BUT_WELL_TYPED))
def test_an_odd_record_of_the_right_types_ends_every_verb_with_a_line_not_a_traceback(
    user: Researcher, reap: Path, odd: dict[str, object]
) -> None:
    out = user.make_out()
    for verb in ("state", "stop", "graph", "resume"):
        (out / "provisioner-state.json").write_text(
            json.dumps({"schema": 1, "state": "verifying", "history": [], **odd})
        )
        (out / "provisioner-token").write_text(TOKEN)
        for path in (out / "provisioner-state.json", out / "provisioner-token"):
            user.own(path)
        args = [verb, "--output-dir", str(out)] + (["--current"] if verb == "graph" else [])
        run = as_root(args, reap)
        assert "Traceback" not in run.stderr, (verb, run.stderr)
        # A documented code, never an internal error (1).
        documented = [status.exit_code for status in Status] if verb == "state" else (0, 2, 10, 11, 12, 13, 14, 15)
        assert run.returncode in documented, (verb, run.returncode, run.stderr)


def test_a_record_nested_past_any_limit_is_set_aside(user: Researcher, reap: Path) -> None:
    out = user.make_out()
    for verb in ("state", "stop", "resume"):
        (out / "provisioner-state.json").write_text("[" * 200_000)
        user.own(out / "provisioner-state.json")
        run = as_root([verb, "--output-dir", str(out)], reap)
        assert "Traceback" not in run.stderr, (verb, run.stderr)
        assert "it is not valid JSON" in run.stderr


def test_a_worker_that_outlives_its_deadline_is_killed_and_root_goes_on(user: Researcher) -> None:
    """Whatever holds the worker (a FUSE mount of the account's, a definition with waits of years), root does not
    wait past the time its settings allow."""
    hold = f"""
import time
from provisioner import output, privsep
from provisioner.values import locate_user
output.setup()
privsep.act_for(locate_user({user.account.pw_name!r}), deadline=1.0)
time.sleep(60)
"""
    started = time.monotonic()
    held = subprocess.run(
        [sys.executable, "-c", hold], capture_output=True, text=True, timeout=30, check=False, cwd=CHECKOUT
    )
    assert held.returncode == ExitCode.MONITOR, held.stderr
    assert "did not finish in the time its settings allow; it was killed" in held.stderr
    assert time.monotonic() - started < 20


def test_module_output_the_account_wrote_is_a_module_failure_not_a_traceback(
    user: Researcher, reap: Path, tmp_path: Path
) -> None:
    """~/.modulerc.lua runs as the account while Lmod evaluates: it may print anything, escape sequences included."""
    modules = Path(tempfile.mkdtemp(prefix="modules-"))
    try:
        modules.chmod(0o755)
        write_module(modules, "JupyterNotebook", f'prepend_path("PATH", "{REAL_JUPYTER.parent}")\n')
        (modules / "JupyterNotebook.lua").chmod(0o644)
        rc = user.home / ".modulerc.lua"
        rc.write_text('io.write("\\27]0;PWNED\\7\\27[2J(\\n")\n')
        user.own(rc)
        run = as_root(
            ["run", "--user", user.account.pw_name, "--module", "JupyterNotebook"],
            reap,
            {"JUPYTER_TOKEN": TOKEN, "MODULEPATH": str(modules)},
        )
        assert run.returncode == 11, run.stderr
        assert "printed output we cannot read" in run.stderr
        assert "Traceback" not in run.stderr and "\x1b" not in run.stderr
    finally:
        shutil.rmtree(modules)


EDITED_SETTINGS = {
    "a notebook dir root's alone": {"notebook_dir": "/root/.ssh/x"},
    "a user with a NUL": {"user": "nobody\u0000"},
    "an unclosed IPv6 URL": {"start_url": "http://[x/"},
}


@pytest.mark.parametrize("edit", list(EDITED_SETTINGS.values()), ids=list(EDITED_SETTINGS))
def test_recorded_settings_the_account_edited_end_resume_with_a_line(
    user: Researcher, reap: Path, edit: dict[str, object]
) -> None:
    failed_run(user, reap)
    user.edit_record(**{f"settings__{key}": value for key, value in edit.items()})
    resumed = as_root(["resume", "--output-dir", str(user.out)], reap)
    assert resumed.returncode == 2, resumed.stderr
    one_line_error(resumed)
    assert "the recorded settings cannot be used" in resumed.stderr


def test_a_recorded_definition_root_alone_may_read_is_not_a_traceback(user: Researcher, reap: Path) -> None:
    failed_run(user, reap)
    user.edit_record(definition__source="/root/.ssh/x")
    resumed = as_root(["resume", "--output-dir", str(user.out)], reap)
    assert "Traceback" not in resumed.stderr, resumed.stderr
    assert resumed.returncode == 11, resumed.stderr  # the shipped definition, and the recorded failure again


def test_a_recorded_launcher_of_systemd_starts_no_unit_unless_root_says_so(user: Researcher, reap: Path) -> None:
    failed_run(user, reap)
    user.edit_record(settings__launcher="systemd", settings__module="")
    resumed = as_root(["resume", "--output-dir", str(user.out)], reap)
    assert resumed.returncode == 14, resumed.stderr
    assert "root was not asked to launch" in resumed.stderr and "give --launcher systemd on root" in resumed.stderr
    assert servers_of(user) == []


def listener_uid(port: int) -> int | None:
    """The uid of the socket listening on 127.0.0.1:`port`, as the kernel records it (/proc/net/tcp)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, uid = fields[1], fields[3], fields[7]
        if local == f"0100007F:{port:04X}" and state == "0A":  # 127.0.0.1, LISTEN
            return int(uid)
    return None


def test_the_progress_page_is_served_by_the_account_not_root(user: Researcher, reap: Path) -> None:
    modules = Path(tempfile.mkdtemp(prefix="modules-"))
    try:
        modules.chmod(0o755)
        write_module(modules, "Slow", f'os.execute("sleep 3")\nprepend_path("PATH", "{REAL_JUPYTER.parent}")\n')
        (modules / "Slow.lua").chmod(0o644)
        port = free_port()
        args = ["run", "--user", user.account.pw_name, "--module", "Slow", "--port", str(port), "--ip", "127.0.0.1"]
        env = cli_env(reap, path=f"{REAL_JUPYTER.parent}:{SYSTEM_PATH}", JUPYTER_TOKEN=TOKEN, MODULEPATH=str(modules))
        process = start_cli([*args, "--progress-page"], env)
        deadline = time.monotonic() + 30
        while listener_uid(port) is None and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.02)
        assert process.poll() is None
        assert listener_uid(port) == user.account.pw_uid  # the page, while the module loads:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            connection.sendall(b"GET / HTTP/1.0\r\n\r\n")
            answer = connection.recv(65536)
        assert answer.startswith(b"HTTP/1.0 503 ") and b"X-Provisioner-Progress: 1" in answer
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
        assert listener_uid(port) == user.account.pw_uid  # and then Jupyter
    finally:
        shutil.rmtree(modules)


def test_root_will_not_run_for_an_account_in_an_output_directory_another_account_controls(
    user: Researcher, reap: Path
) -> None:
    """B makes an output directory A may write, and gets root to run for A in it: B could replace the record, and
    A's next `resume` would run B's init script as A."""
    with account() as other:
        foreign = Path(other.pw_dir) / "shared-out"
        foreign.mkdir(mode=0o700)
        os.chown(foreign, other.pw_uid, other.pw_gid)
        foreign.chmod(0o777)  # as B would, so that A can write there
        for mode, who in ((0o777, f"{other.pw_name} and any account"), (0o755, f"{other.pw_name}; as root for")):
            foreign.chmod(mode)
            run = run_for(user, reap, "--output-dir", str(foreign))
            assert run.returncode == 2, run.stderr
            one_line_error(run)
            assert f"--output-dir: '{foreign}' can be changed by {who}" in run.stderr
            assert list(foreign.iterdir()) == [] and servers_of(user) == []
