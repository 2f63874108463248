"""Settings: each value checked where it enters, layered defaults <- states.toml <- environment <- command line."""

from __future__ import annotations

from pathlib import Path

from provisioner.settings import OPTIONS, Settings, help_text, resolve


def test_every_default_in_the_help_is_the_one_the_run_uses() -> None:
    shown = {name: help_text(name) for name in OPTIONS}
    defaults = Settings()
    assert "(default 8008)" in shown["port"] and defaults.port == 8008
    assert "(default 0.0.0.0" in shown["ip"] and defaults.ip == "0.0.0.0"
    assert "(default JupyterNotebook;" in shown["module"] and defaults.module == "JupyterNotebook"
    assert "(default 60)" in shown["timeout"] and defaults.timeout == 60.0
    assert "(default process)" in shown["launcher"] and defaults.launcher == "process"
    assert all("{default}" not in text for text in shown.values())


def test_the_command_line_beats_the_environment_which_beats_states_toml() -> None:
    defaults = {"port": 8100, "module": "FromToml", "timeout": 30}
    environ = {"PROVISIONER_PORT": "8200", "PROVISIONER_MODULE": "FromEnv", "HOME": "/home/researcher"}
    settings = resolve({"port": "8300"}, environ, defaults, None)
    assert settings.port == 8300
    assert settings.module == "FromEnv"
    assert settings.timeout == 30.0
    assert settings.ip == "0.0.0.0"
    assert settings.out == Path("/home/researcher/.jupyter")
