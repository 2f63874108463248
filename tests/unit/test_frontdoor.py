"""One front door: `jupyter-init` and its verbs. A word is a verb, the old call in its exact shape, or a usage error;
never the token by accident. Its second name, `provisioner`, is the same entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner import cli, exits, frontdoor
from provisioner.cli import build_parser
from provisioner.errors import UsageError
from tests.helpers.cli import jupyter_pids
from tests.helpers.constants import TOKEN
from tests.helpers.receiver import CallbackServer


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


def test_help_as_a_word_shows_the_help_and_a_verbs_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ended:
        cli.main(["help"])
    assert ended.value.code == 0 and capsys.readouterr().out.startswith("usage: jupyter-init [-h]")
    with pytest.raises(SystemExit):
        cli.main(["help", "stop"])
    assert capsys.readouterr().out.startswith("usage: jupyter-init stop ")


def test_an_option_is_taken_only_by_its_whole_name(nobody_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # With argparse's abbreviations, `--token SECRET` would be `--token-file SECRET`: a file named after the secret.
    err = refused(["--token", "tok-typed-where-jupyter-takes-it-0123"], nobody_home, capsys)
    assert "unrecognized arguments: --token" in err and "tok-typed" not in err
    assert refused(["state", "--out", str(nobody_home)], nobody_home, capsys).count("--out") == 1


LONG = "a-token-of-many-characters"
URL = "https://portal.example/cb"


@pytest.mark.parametrize(
    ("words", "routed"),
    [
        ([], ["run"]),
        (["--port", "9000"], ["run", "--port", "9000"]),
        ([LONG, URL, URL], ["run", LONG, URL, URL]),  # the old call, in exactly its shape
        ([LONG, "", URL, "--port", "9000"], ["run", LONG, "", URL, "--port", "9000"]),
        (["state", "--json"], ["state", "--json"]),
        (["help"], ["--help"]),
        (["help", "stop"], ["stop", "--help"]),
        (["help", LONG], ["--help"]),  # help of no verb: the word is not taken for anything
        (["--version"], ["--version"]),
    ],
)
def test_the_verb_comes_first_and_no_verb_or_the_old_call_is_run(words: list[str], routed: list[str]) -> None:
    assert frontdoor.with_verb(words) == routed


@pytest.mark.parametrize(
    ("word", "meant"), [("stat", "state"), ("start", "run"), ("status", "state"), ("kill", "stop")]
)
def test_a_short_word_near_a_verb_is_shown_with_the_verb_it_may_mean(word: str, meant: str) -> None:
    with pytest.raises(UsageError, match=rf"^'{word}' is not a verb: did you mean {meant}\?"):
        frontdoor.with_verb([word])


@pytest.mark.parametrize("word", [LONG, "statusstatus", LONG + "x"])
def test_a_long_word_that_is_no_verb_is_never_shown_back(word: str) -> None:
    with pytest.raises(UsageError) as caught:
        frontdoor.with_verb([word, "--port", "9000"])
    assert word not in caught.value.message and "the first word is not a verb" in caught.value.message


def test_an_unknown_option_is_named_and_no_word_that_could_be_the_token_is_shown() -> None:
    words = ["run", "--tokn", LONG, f"--x={LONG}", f"-p{LONG}"]
    with pytest.raises(UsageError) as caught:
        frontdoor.parse(build_parser("run"), words)
    message = caught.value.message
    assert "--tokn" in message and "(see jupyter-init run --help)" in message
    assert LONG not in message and LONG[4:] not in message


def test_an_abbreviation_of_an_option_is_an_unknown_option() -> None:
    # `--token` would otherwise abbreviate `--token-file`, and read a file named after the secret.
    with pytest.raises(UsageError, match="unrecognized arguments: --token"):
        frontdoor.parse(build_parser("run"), ["run", "--token", LONG])


def test_runs_words_are_the_old_calls_three_or_none() -> None:
    args = frontdoor.parse(build_parser("run"), ["run", "stop"])
    with pytest.raises(UsageError, match=r"its only words are the old call's .* \(jupyter-init stop\)"):
        frontdoor.check_old_call(args)
    frontdoor.check_old_call(frontdoor.parse(build_parser("run"), ["run", LONG, "", URL]))
