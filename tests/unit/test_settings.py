"""Settings: each value checked where it enters, layered defaults <- states.toml <- environment <- command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner import actions
from provisioner import definition as definitions
from provisioner.errors import ConfigError, UsageError
from provisioner.secret import Secret
from provisioner.settings import DEFINITION_SETTINGS, OPTIONS, resolve
from provisioner.values import parse_url
from tests.helpers.definitions import shipped_definition


def test_a_mistake_names_where_the_value_came_from() -> None:
    with pytest.raises(UsageError, match=r"^--port: 'http' is not a port number"):
        resolve({"port": "http"}, {}, {}, None)
    with pytest.raises(UsageError, match=r"^settings\.port: 70000 is out of range"):
        resolve({}, {}, {"port": 70000}, None)


def test_a_callback_url_is_http_or_https_with_a_host() -> None:
    assert parse_url("https://portal.example/cb?vm=1") == "https://portal.example/cb?vm=1"
    assert parse_url("") is None
    bad_urls = ("ftp://host/x", "http://", "portal.example/cb", "http://host:port/", "http://a b/", "http://[::1")
    for bad in bad_urls:
        with pytest.raises(UsageError, match=r"^START_URL: ") as caught:
            resolve({"start_url": bad}, {}, {}, None)
        assert bad not in caught.value.message  # a misplaced token must not be echoed


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("timeout", "nan"),
        ("timeout", "inf"),
        ("timeout", "1e999"),
        ("timeout", "-1"),
        ("idle_timeout", str(10**30)),
        ("notebook_dir", "~no-such-account-here/x"),
        ("init_script", "~no-such-account-here/x"),
        ("output_dir", "a\0b"),
        ("user", "no-such-account-here"),
        ("user", "a b"),
        ("ip", "::1%"),
        ("ip", "fe80::1%eth0"),
        ("ip", "fe80::1%\x1b[31m"),
    ],
)
def test_a_value_no_run_could_use_is_one_line_naming_its_option(name: str, bad: str) -> None:
    option = "--" + name.replace("_", "-")
    with pytest.raises(UsageError) as caught:
        resolve({name: bad}, {"HOME": "/home/r"}, {}, None)
    assert caught.value.message.startswith(f"{option}: ")
    assert "\n" not in caught.value.message


def test_a_home_with_a_nul_is_refused() -> None:
    with pytest.raises(UsageError, match=r"^HOME: not a path"):
        resolve({}, {"HOME": "/home/\0r"}, {}, None)


def test_a_definitions_settings_are_checked_for_form_only_so_any_machine_agrees() -> None:
    # An account or a directory of the machine the definition is meant for, absent here: only the run may say so.
    assert OPTIONS["user"].parse("no-such-account-here") == "no-such-account-here"
    assert OPTIONS["notebook_dir"].parse("/no/such/directory/here") == "/no/such/directory/here"
    data = shipped_definition()
    for name, wrong in (("port", True), ("module", ["JupyterNotebook"]), ("timeout", "60"), ("user", 1000)):
        data["settings"] = {name: wrong}
        with pytest.raises(ConfigError) as caught:
            definitions.parse(data, actions.reasons(), DEFINITION_SETTINGS, source="test")
        [problem] = caught.value.problems
        assert (problem.path, problem.message.startswith("must be ")) == (f"settings.{name}", True)


def test_an_environment_mistake_names_the_variable() -> None:
    with pytest.raises(UsageError, match=r"^PROVISIONER_TIMEOUT: "):
        resolve({}, {"PROVISIONER_TIMEOUT": "soon"}, {}, None)


def test_the_output_dir_can_be_moved() -> None:
    settings = resolve({"output_dir": "/srv/out"}, {"HOME": "/home/r"}, {}, None)
    assert settings.out == Path("/srv/out")


def test_the_token_never_shows_in_a_repr_or_the_public_view() -> None:
    settings = resolve({}, {"HOME": "/home/r"}, {}, Secret("s3cret-value"))
    assert "s3cret-value" not in repr(settings)
    assert "s3cret-value" not in str(settings.public())
    assert settings.token is not None and settings.token.reveal() == "s3cret-value"


@pytest.mark.parametrize("name", ["port", "ip", "timeout", "idle_timeout", "user", "launcher"])
def test_a_token_given_as_another_option_shows_in_no_part(name: str) -> None:
    token = "k3Jd9sLq0pXz7VbN2mWc4RtY6uEa8GhF1oIy5TnS"  # 40 characters, as a token given in the wrong place
    with pytest.raises(UsageError) as caught:
        resolve({name: token}, {"HOME": "/home/r"}, {}, None)
    message = caught.value.message
    assert not [token[i : i + 8] for i in range(len(token) - 7) if token[i : i + 8] in message], message


def test_the_progress_page_is_a_switch_from_any_layer() -> None:
    assert resolve({}, {}, {}, None).progress_page is False
    assert resolve({"progress_page": True}, {}, {}, None).progress_page is True
    for word, meant in (("1", True), ("yes", True), ("ON", True), ("0", False), ("off", False), ("false", False)):
        assert resolve({}, {"PROVISIONER_PROGRESS_PAGE": word}, {}, None).progress_page is meant, word
    assert resolve({}, {}, {"progress_page": True}, None).progress_page is True
    with pytest.raises(UsageError, match=r"^PROVISIONER_PROGRESS_PAGE: must be one of 1, true, yes, on, 0, "):
        resolve({}, {"PROVISIONER_PROGRESS_PAGE": "maybe"}, {}, None)
    data = shipped_definition()
    data["settings"] = {"progress_page": "yes"}  # TOML has booleans: a string is a mistake
    with pytest.raises(ConfigError) as caught:
        definitions.parse(data, actions.reasons(), DEFINITION_SETTINGS, source="test")
    assert [(problem.path, problem.message) for problem in caught.value.problems] == [
        ("settings.progress_page", "must be true or false")
    ]


def test_the_progress_page_needs_a_port_someone_can_know() -> None:
    with pytest.raises(UsageError, match=r"^--progress-page needs a fixed --port"):
        resolve({"progress_page": True}, {"PROVISIONER_PORT": "auto"}, {}, None)
    assert resolve({"progress_page": True, "port": "8100"}, {}, {}, None).port == 8100


def test_a_certificate_is_named_by_its_absolute_path_and_must_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server reads it from the account's home, not from where the command was typed.
    (tmp_path / "vm.crt").write_text("")
    (tmp_path / "vm.key").write_text("")
    monkeypatch.chdir(tmp_path)
    settings = resolve({"certfile": "vm.crt", "keyfile": "./vm.key"}, {"HOME": "/home/r"}, {}, None)
    assert (settings.certfile, settings.keyfile) == (tmp_path / "vm.crt", tmp_path / "vm.key")
    with pytest.raises(UsageError, match=r"^--keyfile: 'nothing.key': no such file$"):
        resolve({"certfile": "vm.crt", "keyfile": "nothing.key"}, {}, {}, None)
    with pytest.raises(UsageError, match=r"^--certfile: '.' is not a file$"):
        resolve({"certfile": ".", "keyfile": "vm.key"}, {}, {}, None)


@pytest.mark.parametrize(
    ("name", "value"),
    [("port", "٨٠٥٣"), ("timeout", "٣٠"), ("idle_timeout", "٣٦٠٠"), ("port", "\uff18\uff10\uff10\uff18")],
)
def test_a_number_is_written_in_ascii_digits(name: str, value: str) -> None:
    # int() and float() read any script's digits: ٨٠٥٣ would be port 8053, which no one typed.
    with pytest.raises(UsageError, match=f"^--{name.replace('_', '-')}: "):
        resolve({name: value}, {"HOME": "/home/r"}, {}, None)
