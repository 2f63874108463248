"""One front door: `jupyter-init` and its verbs. A word is a verb, the old call in its exact shape, or a usage error;
never the token by accident. Its second name, `provisioner`, is the same entry point."""

from __future__ import annotations

import json
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

from provisioner import __version__, cli, exits
from provisioner.exits import VERBS
from provisioner.netinfo import port_free
from tests.helpers.cli import Run, cli_env, jupyter_pids
from tests.helpers.constants import REAL_JUPYTER, SYSTEM_PATH, TOKEN
from tests.helpers.net import free_port
from tests.helpers.receiver import CallbackServer

COMMAND = Path(sys.executable).with_name("jupyter-init")
SECOND_NAME = Path(sys.executable).with_name("provisioner")


@pytest.fixture
def nobody_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME with a token in the environment, as a newcomer who followed the README has: a word taken as a run
    would find a usable token."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("JUPYTER_TOKEN", TOKEN)
    return home


def refused(argv: list[str], home: Path, capsys: pytest.CaptureFixture[str], code: int = exits.ExitCode.USAGE) -> str:
    """The one line a refused command line prints; and that it started, created and stopped nothing."""
    exited = cli.main(argv)
    out, err = capsys.readouterr()
    assert (exited, out, err.count("\n")) == (code, "", 1), (argv, err)
    assert err.startswith("jupyter-init: error: ")
    assert not (home / ".jupyter").exists() and jupyter_pids(home) == []
    return err


@pytest.mark.parametrize(
    ("word", "verb"),
    [
        *[("statee", "state"), ("stat", "state"), ("stpo", "stop"), ("resum", "resume"), ("grahp", "graph")],
        *[("rnu", "run"), ("start", "run"), ("status", "state"), ("version", "--version")],
    ],
)
def test_a_mistyped_verb_is_a_usage_error_that_names_the_verb(
    word: str, verb: str, nobody_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = refused([word], nobody_home, capsys)
    assert f"'{word}' is not a verb: did you mean {verb}?" in err


@pytest.mark.parametrize("word", ["hello", "tok12345", "stateeeeeeeeeeee", ""])
def test_a_word_like_no_verb_is_not_shown_back_and_the_verbs_are_listed(
    word: str, nobody_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Any word but a short typo of a verb may be a token typed where it does not belong.
    err = refused([word], nobody_home, capsys)
    assert err == (
        "jupyter-init: error: the first word is not a verb: the verbs are run, resume, state, stop, graph, check, boot "
        "(see jupyter-init --help)\n"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--port", "9000", "stop"],  # an option first is `run`: the word after it is no token
        ["run", "state"],
        ["run", "--module", "", "resume"],
        ["run", "tok-a-real-looking-token-0123456789"],  # the old call's token without its URLs
        ["tok-a-real-looking-token-0123456789", "http://a.example/"],
        ["tok-a-real-looking-token-0123456789", "http://a.example/", "not-a-url"],
        ["tok-a-real-looking-token-0123456789", "start", "complete"],
        ["tok-a-real-looking-token-0123456789", "http://a.example/", "http://b.example/", "extra"],
    ],
)
def test_a_bare_word_outside_the_old_calls_shape_is_never_the_token(
    argv: list[str], nobody_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = refused(argv, nobody_home, capsys)
    assert "tok-a-real-looking-token" not in err, "a word that could be a token is never printed back"


def test_a_verb_typed_after_an_option_is_suggested_in_its_place(
    nobody_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = refused(["--module", "", "stop"], nobody_home, capsys)
    assert "run was given the word 'stop'" in err and "a verb comes first (jupyter-init stop)" in err


def test_a_value_that_could_be_the_token_is_never_echoed(nobody_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mistaken = "tok-given-in-the-wrong-place-42"
    for argv in (
        ["run", "--token-file", mistaken],
        ["run", "--port", mistaken],
        ["run", "--launcher", mistaken],
        ["run", "--app", mistaken],
        ["stop", "--grace", mistaken],
        ["run", "--bogus", mistaken],
        ["run", "--notebook-dir", mistaken],
        ["run", "--certfile", mistaken, "--keyfile", mistaken],
        ["run", "--user", mistaken],
        ["run", "--ip", mistaken],
        [mistaken],
        # argparse quotes what it cannot take in ways of its own: with double quotes, after `=`, glued to `-h`.
        ["run", f"--json-log=it's-{mistaken}"],
        ["graph", "--format", f"it's-{mistaken}"],
        ["run", f"--port={mistaken}"],
        [f"-h{mistaken}"],
        [f"-{mistaken}", "http://a.example/", "http://b.example/"],  # a token that starts with `-` needs `--`
    ):
        err = refused(argv, nobody_home, capsys)
        assert not any(mistaken[start : start + 8] in err for start in range(len(mistaken) - 8)), (argv, err)
    unreadable = refused(["check", "--states", mistaken], nobody_home, capsys, exits.ExitCode.CONFIG)
    assert unreadable == "jupyter-init: error: (a value of 31 characters): cannot read: No such file or directory\n"


def test_a_run_failure_never_quotes_a_value_that_could_be_the_token(
    nobody_home: Path, capsys: pytest.CaptureFixture[str], callbacks: CallbackServer
) -> None:
    """What a run fails on goes to the platform too: an init script named by a token is not named back."""
    mistaken = "tok-given-in-the-wrong-place-42"
    code = cli.main(["run", "--init-script", mistaken, "--complete-url", callbacks.url("/complete")])
    err = capsys.readouterr().err
    assert code == 11 and "init script (a value of 31 characters) does not exist" in err
    [failed] = callbacks.forms("/complete")
    assert failed["reason"] == "module_load_failed" and mistaken not in str(callbacks.forms()) + err


def test_a_token_file_named_by_a_path_is_shown_so_the_operator_sees_which(
    nobody_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = nobody_home / "no-such-directory" / "token"
    err = refused(["run", "--token-file", str(missing)], nobody_home, capsys)
    assert f"--token-file: cannot read '{missing}': No such file or directory" in err


def test_an_unknown_option_is_named_and_its_value_is_not(nobody_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(["run", "--prot", "tok-given-in-the-wrong-place-42", "--colour", "blue"], nobody_home, capsys)
    assert "unrecognized arguments: --prot --colour and 1 other word(s)" in err and "tok-" not in err
    err = refused(["stop", "http://a.example/", "http://b.example/"], nobody_home, capsys)
    assert "unrecognized arguments: 2 word(s) (see jupyter-init stop --help)" in err


@pytest.mark.parametrize("command", [COMMAND, SECOND_NAME])
def test_both_names_print_the_version_and_the_verbs(command: Path, tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    version = subprocess.run([command, "--version"], capture_output=True, text=True, env=env, check=False)
    assert (version.returncode, version.stdout) == (0, f"jupyter-init {__version__}\n")
    shown = subprocess.run([command, "--help"], capture_output=True, text=True, env=env, check=False)
    assert shown.returncode == 0 and shown.stdout.startswith("usage: jupyter-init ")
    for verb in VERBS:
        assert f"\n    {verb} " in shown.stdout, verb  # each verb on a line of its own, with what it is for


def test_help_as_a_word_shows_the_help_and_a_verbs_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ended:
        cli.main(["help"])
    assert ended.value.code == 0 and capsys.readouterr().out.startswith("usage: jupyter-init [-h]")
    with pytest.raises(SystemExit):
        cli.main(["help", "stop"])
    assert capsys.readouterr().out.startswith("usage: jupyter-init stop ")


def command(args: list[str], env: dict[str, str], user: str | None = None) -> Run:
    """The installed `jupyter-init`, as an operator types it (as `user` through runuser, with the same environment)."""
    prefix = ["runuser", "-u", user, "--"] if user else []
    done = subprocess.run(
        [*prefix, str(COMMAND), *args], env=env, capture_output=True, text=True, timeout=120, check=False, cwd="/"
    )
    return Run(done.returncode, done.stdout, done.stderr, Path(env["HOME"]))


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()


def record(out: Path) -> bytes:
    return (out / "provisioner-state.json").read_bytes()


def test_with_a_live_server_and_the_token_set_every_word_does_its_verb_or_nothing(
    reap: Path, callbacks: CallbackServer
) -> None:
    """The newcomer's first minutes: a server is up, $JUPYTER_TOKEN is still set, and they type words."""
    port = free_port()
    env = cli_env(reap, path=f"{REAL_JUPYTER.parent}:{SYSTEM_PATH}", JUPYTER_TOKEN=TOKEN)
    urls = ["--start-url", callbacks.url("/start"), "--complete-url", callbacks.url("/complete")]
    first = command(["--module", "", "--port", str(port), *urls], env)
    assert first.returncode == 0, first.stderr
    pid = int(str(first.info()["pid"]))
    kept = record(first.out)

    for argv, code in (
        (["state"], 0),
        (["graph"], 0),
        (["check"], 0),
        (["statee"], 2),
        (["stop", "now"], 2),
        (["--port", str(port), "stop"], 2),
        (["run", "resume"], 2),
    ):
        done = command(argv, env)
        assert done.returncode == code, (argv, done.stderr)
        assert "Traceback" not in done.stderr and TOKEN not in done.stdout + done.stderr
        assert alive(pid) and record(first.out) == kept, f"{argv} touched the live server or its record"

    # A token that is a word, on the default bind: refused before anything is stopped or started.
    weak = command(["--module", "", "--port", str(port), *urls], env | {"JUPYTER_TOKEN": "stop"})
    assert weak.returncode == 10, weak.stderr
    assert "the token is 4 characters long; at least 16 are needed" in weak.stderr
    assert alive(pid) and record(first.out) == kept and jupyter_pids(reap) == [pid]
    failed = callbacks.forms("/start")[-1]
    assert (failed["status"], failed["reason"], failed["state"]) == ("failed", "no_token", "failed")
    assert failed["message"] == "the token is 4 characters long; at least 16 are needed for a server listening on " + (
        "0.0.0.0 (beyond loopback)"
    )

    stopped = command(["stop"], env)
    assert stopped.returncode == 0, stopped.stderr
    assert not alive(pid) and port_free("0.0.0.0", port)
    assert command(["state"], env).returncode == exits.ExitCode.STOPPED
    resumed = command(["resume"], env)
    assert resumed.returncode == 0, resumed.stderr
    assert command(["state"], env).returncode == exits.ExitCode.OK
    assert command(["stop"], env).returncode == 0 and jupyter_pids(reap) == []


def test_root_runs_the_old_call_for_an_account_and_the_account_uses_the_verbs(
    researcher: pwd.struct_passwd, reap: Path, callbacks: CallbackServer
) -> None:
    name, home = researcher.pw_name, Path(researcher.pw_dir)
    port = free_port()
    root_env = cli_env(reap, path=f"{REAL_JUPYTER.parent}:{SYSTEM_PATH}")
    old_call = [TOKEN, callbacks.url("/start"), callbacks.url("/complete")]
    first = command([*old_call, "--user", name, "--module", "", "--port", str(port)], root_env)
    assert first.returncode == 0, first.stderr
    assert [form["status"] for form in callbacks.forms()] == ["init_started", "init_completed"]
    info = json.loads((home / ".jupyter" / "jupyter_info.json").read_text())
    pid = int(info["pid"])
    assert Path(f"/proc/{pid}").stat().st_uid == researcher.pw_uid

    # The account, with the token in its environment, types what a newcomer types.
    env = cli_env(home, path=f"{REAL_JUPYTER.parent}:{SYSTEM_PATH}", JUPYTER_TOKEN=TOKEN)
    assert command(["statee"], env, user=name).returncode == 2
    assert command(["state"], env, user=name).returncode == 0 and alive(pid)
    stopped = command(["stop"], env, user=name)
    assert stopped.returncode == 0, stopped.stderr
    assert not alive(pid) and jupyter_pids(home) == []


def test_a_short_token_on_loopback_is_a_warning_and_every_callback_field_arrives_whole(
    reap: Path, callbacks: CallbackServer
) -> None:
    port = free_port()
    env = cli_env(reap, path=f"{REAL_JUPYTER.parent}:{SYSTEM_PATH}", JUPYTER_TOKEN="init")
    urls = ["--start-url", callbacks.url("/start"), "--complete-url", callbacks.url("/complete")]
    done = command(
        ["--module", "", "--ip", "127.0.0.1", "--port", str(port), "--progress-url", callbacks.url("/p"), *urls], env
    )
    assert done.returncode == 0, done.stderr
    assert "warning: the token is 4 characters long; at least 16 are needed; accepted only because" in done.stderr
    assert [form["status"] for form in callbacks.forms("/start")] == ["init_started"]
    assert [form["status"] for form in callbacks.forms("/complete")] == ["init_completed"]
    assert [form["status"] for form in callbacks.forms("/p")] == [
        "validating",
        "loading",
        "port_check",
        "starting",
        "verifying",
        "ready",
    ]
    completed = callbacks.forms("/complete")[0]
    assert completed["url"] == f"http://127.0.0.1:{port}/" and completed["state"] == "ready"
    assert not any("***" in value for form in callbacks.forms() for value in form.values())
    assert "***" not in done.stderr
    assert command(["stop"], env).returncode == 0


def test_an_option_is_taken_only_by_its_whole_name(nobody_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # With argparse's abbreviations, `--token SECRET` would be `--token-file SECRET`: a file named after the secret.
    err = refused(["--token", "tok-typed-where-jupyter-takes-it-0123"], nobody_home, capsys)
    assert "unrecognized arguments: --token" in err and "tok-typed" not in err
    assert refused(["state", "--out", str(nobody_home)], nobody_home, capsys).count("--out") == 1
