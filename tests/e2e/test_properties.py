"""Whatever a caller passes: a clear exit code, never a traceback, never the token in what we print or send."""

from __future__ import annotations

import os
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisioner import actions, cli, output
from provisioner import definition as definitions_module
from provisioner.errors import ConfigError
from provisioner.exits import Status
from provisioner.settings import DEFINITION_SETTINGS
from tests.helpers.cli import jupyter_pids
from tests.helpers.definitions import shipped_definition, to_toml
from tests.helpers.receiver import CallbackServer, serving

PRINTABLE = string.ascii_letters + string.digits + string.punctuation


tokens = st.one_of(
    st.text(alphabet=PRINTABLE, min_size=12, max_size=64),  # well formed
    st.text(min_size=0, max_size=40),  # anything at all: spaces, control characters, unicode
)


ports = st.one_of(st.integers(-10, 70000).map(str), st.sampled_from(["auto", "", "http", "8008.0", " 80"]), st.text())


urls = st.one_of(st.just("CALLBACK"), st.just(""), st.text(max_size=30), st.sampled_from(["ftp://x/y", "http://"]))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A definition that gives up on callbacks quickly, and an output directory that is a file, so nothing starts."""
    root = tmp_path_factory.mktemp("properties")
    data = shipped_definition()
    data["callbacks"] = {"timeout": 0.5, "attempts": 1, "deadline": 0.5}
    states = root / "states.toml"
    states.write_text(to_toml(data))
    blocked = root / "not-a-directory"
    blocked.write_text("")
    return states, blocked


@pytest.fixture(scope="module")
def receiver() -> object:
    with serving() as server:
        yield server


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=tokens, port=ports, url=urls, positional=st.booleans())
def test_any_input_ends_in_a_known_code_without_a_leak(
    setup: tuple[Path, Path],
    receiver: CallbackServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    token: str,
    port: str,
    url: str,
    positional: bool,
) -> None:
    states, blocked = setup
    url = receiver.url("/start") if url == "CALLBACK" else url
    before = len(receiver.received)
    argv = ["run", "--states", str(states), "--module", "", "--output-dir", str(blocked), "--port", port]
    if positional or "\x00" in token or not token.isprintable():  # the environment cannot hold every string
        argv += ["--", token, url, ""]  # the old call's shape: TOKEN START_URL COMPLETE_URL
    else:
        monkeypatch.setenv("JUPYTER_TOKEN", token)
        argv += ["--start-url", url]
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code in (2, 10, 15), err
    assert "Traceback" not in err
    assert err.strip(), "every failure says why"
    sent = receiver.received[before:]
    # Past the command line (exit 10 or 15), the failure is told to the start URL, if there is one.
    assert len(sent) == (1 if url == receiver.url("/start") and code != 2 else 0), (code, err)
    if len(token.strip()) >= 8:
        assert token not in out + err
        assert [received for received in sent if token.encode() in received.body] == []


# Hostile values for a definition: every TOML type, numbers no timer can take, text of every kind, nesting.
SCALARS = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([10**400, -(10**400), 0, 1, 5, 127, 128]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["idle", "failed", "ok", "port_in_use", "start", "complete", "validating", "auto", "", "\n"]),
    st.datetimes(),
)


VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def definitions(draw: st.DrawFn) -> dict[str, Any]:
    """The shipped definition with a few things changed anywhere in it: replaced, removed or added."""
    data = shipped_definition()
    for _ in range(draw(st.integers(1, 4))):
        node: Any = data
        while True:
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            if not keys:
                break
            key = draw(st.sampled_from(keys))
            child = node[key]
            if isinstance(child, (dict, list)) and child and draw(st.booleans()):
                node = child
                continue
            change = draw(st.sampled_from(["replace", "remove", "add"]))
            if change == "replace":
                node[key] = draw(VALUES)
            elif change == "remove":
                del node[key]
            elif isinstance(node, dict):
                node[draw(st.text(max_size=8))] = draw(VALUES)
            else:
                node.append(draw(VALUES))
            break
    return data


def problem_lines(err: str, source: Path) -> list[str]:
    """The problems under the error line that counts them; each one line, in the file's order."""
    first, *rest = err.splitlines()
    assert first == f"jupyter-init: error: {source} is not a valid definition:"
    assert rest and all(line.startswith("  ") and line.strip() for line in rest), err
    return rest


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=definitions())
def test_any_definition_is_judged_whole_one_line_per_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: dict[str, Any]
) -> None:
    states = tmp_path / "states.toml"
    states.write_text(to_toml(data))
    code = cli.main(["check", "--states", str(states)])
    out, err = capsys.readouterr()
    assert code in (0, 3), err
    assert "Traceback" not in err
    if code == 0:
        assert out == f"{states}: ok ({len(data['states'])} states, {len(data['transitions'])} transitions)\n"
        return
    try:
        definitions_module.load(states, actions.reasons(), DEFINITION_SETTINGS)
    except ConfigError as exc:
        if len(exc.problems) == 1 and not exc.problems[0].path:
            assert err == f"jupyter-init: error: {states}: {output.printable(exc.problems[0].message)}\n"
            return
        assert problem_lines(err, states) == [f"  {output.printable(str(problem))}" for problem in exc.problems]
    else:
        pytest.fail("check refused a definition the loader takes")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=definitions())
def test_a_run_with_any_definition_ends_in_a_declared_code_and_starts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, data: dict[str, Any]
) -> None:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("JUPYTER_TOKEN", raising=False)
    states = tmp_path / "states.toml"
    states.write_text(to_toml(data))
    # No token: a run that gets past its definition fails no_token, before it could start anything.
    code = cli.main(["run", "--states", str(states), "--module", ""])
    _, err = capsys.readouterr()
    assert "Traceback" not in err
    declared: dict[str, int] = data["reasons"] if code != 3 else {}
    assert code == 3 or code in (2, *declared.values()), err
    assert err.strip(), "every failure says why"
    assert jupyter_pids(home) == []


def special_files(root: Path) -> dict[str, Path]:
    fifo = root / "fifo"
    os.mkfifo(fifo)
    (root / "loop").symlink_to(root / "loop")
    deep = root / "deep.toml"
    deep.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    huge = root / "huge.toml"
    huge.write_text("# " + "x" * (64 * 1024 * 1024) + "\n")
    binary = root / "binary.toml"
    binary.write_bytes(bytes(range(256)) * 4)
    return {
        "a FIFO": fifo,
        "a device": Path("/dev/zero"),
        "a directory": root,
        "a link to itself": root / "loop",
        "nothing": root / "absent.toml",
        "nested arrays": deep,
        "64 MiB": huge,
        "binary": binary,
    }


def test_special_and_binary_files_as_definitions_are_one_line_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for what, path in special_files(tmp_path).items():
        code = cli.main(["check", "--states", str(path)])
        _, err = capsys.readouterr()
        assert code in (2, 3), (what, err)
        lines = err.splitlines()
        assert "Traceback" not in err
        # exit 2: refused as root's input; exit 3: the file as a whole cannot be read or is not TOML.
        assert len(lines) == 1 and str(path) in lines[0], (what, err)


# The command line of every verb, with options and values of every kind: no traceback, a documented code.
VERB_OPTIONS = {
    "run": [
        "--port",
        "--ip",
        "--module",
        "--timeout",
        "--notebook-dir",
        "--base-url",
        "--idle-timeout",
        "--launcher",
        "--init-script",
        "--user",
        "--start-url",
        "--complete-url",
        "--progress-url",
        "--states",
        "--output-dir",
    ],
    "resume": ["--output-dir", "--states", "--launcher"],
    "state": ["--output-dir", "--json"],
    "stop": ["--output-dir", "--grace"],
    "graph": ["--format", "--current", "--states", "--output-dir"],
    "check": ["--states"],
}


FLAGS = {"--json", "--current"}


CODES = {
    "run": {2, 3, 10},  # no token is ever given: a run that gets that far fails no_token
    "resume": {2, 3},  # nothing is recorded in the private output directory
    "state": {2, 3, *[status.exit_code for status in Status]},
    "stop": {0, 2, 3},
    "graph": {0, 2, 3},
    "check": {0, 2, 3},
}


ARGUMENT = st.one_of(
    st.text(alphabet=st.characters(blacklist_characters="\0", blacklist_categories=["Cs"]), max_size=12),
    st.sampled_from(["auto", "-1", "nan", "inf", "1e999", "::1", "[::1", "http://[::1", "~nobody-here", "..", "-"]),
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(verb=st.sampled_from(sorted(VERB_OPTIONS)), data=st.data())
def test_any_command_line_ends_in_a_documented_code_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, verb: str, data: st.DataObject
) -> None:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("JUPYTER_TOKEN", raising=False)
    argv = [verb]
    for option in data.draw(st.lists(st.sampled_from(VERB_OPTIONS[verb]), max_size=4)):
        argv.append(option)
        if option in FLAGS:
            continue
        value = data.draw(ARGUMENT)
        # Paths stay inside this test's own directory: a verb must not touch the machine's other files.
        argv.append(str(home / value) if option in ("--output-dir", "--states") else value)
    code = cli.main(argv)
    _, err = capsys.readouterr()
    assert "Traceback" not in err
    assert code in CODES[verb], (argv, err)
    if code == 2:  # a usage error is one line
        assert err.count("jupyter-init: error:") == 1 and err.count("\n") == 1, (argv, err)
    if code == 10:  # a run that got as far as its token says why it failed, once
        assert err.count("failed (no_token):") == 1, (argv, err)
    assert jupyter_pids(home) == []
