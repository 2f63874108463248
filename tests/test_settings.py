"""Settings: each value checked where it enters, layered defaults <- states.toml <- environment <- command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.errors import UsageError
from provisioner.settings import Secret, parse_port, parse_url, resolve


def test_a_port_is_a_number_in_range_or_auto() -> None:
    assert parse_port("8008", "--port") == 8008
    assert parse_port(9000, "settings.port") == 9000
    assert parse_port("auto", "--port") is None
    for bad in ("0", "65536", "http", "", "8008.5", True):
        with pytest.raises(UsageError, match=r"^--port: "):
            parse_port(bad, "--port")


def test_a_callback_url_is_http_or_https_with_a_host() -> None:
    assert parse_url("https://portal.example/cb?vm=1", "START_URL") == "https://portal.example/cb?vm=1"
    assert parse_url("", "START_URL") is None
    for bad in ("ftp://host/x", "http://", "portal.example/cb", "http://host:port/", "http://a b/"):
        with pytest.raises(UsageError) as caught:
            parse_url(bad, "START_URL")
        assert bad not in caught.value.message  # a misplaced token must not be echoed


def test_the_command_line_beats_the_environment_which_beats_states_toml() -> None:
    defaults = {"port": 8100, "module": "FromToml", "timeout": 30}
    environ = {"PROVISIONER_PORT": "8200", "PROVISIONER_MODULE": "FromEnv", "HOME": "/home/researcher"}
    settings = resolve({"port": "8300"}, environ, defaults, None)
    assert settings.port == 8300
    assert settings.module == "FromEnv"
    assert settings.timeout == 30.0
    assert settings.ip == "0.0.0.0"
    assert settings.out == Path("/home/researcher/.jupyter")


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
