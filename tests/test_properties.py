"""Whatever a caller passes: a clear exit code, never a traceback, never the token in what we print or send."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisioner import cli
from tests.conftest import CallbackServer, serving, shipped_definition, to_toml

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
        argv += ["--", token, url]
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
