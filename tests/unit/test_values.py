"""Each setting's value, checked where it enters: its shape the same on every machine, then what it names on this one.
Where the value came from (`--port`, `PROVISIONER_PORT`...) is for settings to say: tests/unit/test_settings.py."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from provisioner import values
from provisioner.values import BadValue, parse_port


def test_a_port_is_a_number_in_range_or_auto() -> None:
    assert parse_port("8008") == 8008
    assert parse_port(9000) == 9000
    assert parse_port("auto") is None
    for bad in ("0", "65536", "http", "", "8008.5", True):
        with pytest.raises(BadValue):
            parse_port(bad)


@pytest.mark.parametrize(
    ("given", "path"),
    [
        ("user/alice", "/user/alice/"),
        ("//user//alice", "/user/alice/"),
        ("/", "/"),
        ("/ü/", "/%C3%BC/"),
        ("/%C3%BC/", "/%C3%BC/"),  # encoded already: read back the same, not encoded twice
    ],
)
def test_a_base_url_is_one_path_as_a_browser_sends_it(given: str, path: str) -> None:
    assert values.parse_base_url(given) == path


@pytest.mark.parametrize("given", ["/a b/", "/x?y", "/x#y", "https://host/x", "/100%/", "/\x1b[31m/"])
def test_a_base_url_with_a_host_query_space_or_stray_percent_is_refused(given: str) -> None:
    with pytest.raises(BadValue, match="a base URL is a path"):
        values.parse_base_url(given)


def test_a_switch_takes_the_words_an_environment_uses_and_no_other() -> None:
    assert [values.parse_flag(word) for word in ("1", "true", "Yes", " on ", True)] == [True] * 5
    assert [values.parse_flag(word) for word in ("0", "false", "NO", "off", False)] == [False] * 5
    with pytest.raises(BadValue, match="must be one of"):
        values.parse_flag("maybe")


def test_an_account_name_is_checked_for_shape_here_and_for_existence_on_the_machine() -> None:
    assert values.parse_user(" alice ") == "alice"
    for bad in ("", "-rf", "a b", "a:b", "a/b", "a\x00b"):
        with pytest.raises(BadValue):
            values.parse_user(bad)
    with pytest.raises(BadValue, match="no such user"):
        values.locate_user("no-such-account-here")
    ours = pwd.getpwuid(os.geteuid())
    assert values.locate_user(ours.pw_name).uid == ours.pw_uid


def test_a_directory_must_be_one_and_a_file_must_be_a_file_named_by_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cert.pem").write_text("pem")
    monkeypatch.chdir(tmp_path)
    assert values.locate_directory(str(tmp_path)) == tmp_path
    assert values.locate_file("cert.pem") == tmp_path / "cert.pem", "absolute, wherever the server reads it from"
    with pytest.raises(BadValue, match="is not a directory"):
        values.locate_directory(str(tmp_path / "cert.pem"))
    with pytest.raises(BadValue, match="no such file"):
        values.locate_file(str(tmp_path / "missing.pem"))
    with pytest.raises(BadValue, match="is not a file"):
        values.locate_file(str(tmp_path))
    assert values.locate_path(None) is None and values.locate_path("~") == Path(os.path.expanduser("~"))


def test_a_number_in_another_scripts_digits_is_not_read_as_ascii() -> None:
    assert values.ascii_text(" 8008 ") == "8008"
    with pytest.raises(ValueError):
        values.ascii_text("٨٠٠٨")
