"""Frozen, typed settings, layered: defaults <- states.toml [settings] <- PROVISIONER_* environment <- command line.

Every value is checked where it enters, with the name the user gave it (`--port`, `PROVISIONER_PORT`,
`settings.port`), so that a mistake is one clear line naming its source.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provisioner.errors import UsageError
from provisioner.record import URL_SETTINGS, mask_url
from provisioner.secret import Secret, SigningKey
from provisioner.values import (
    APPS,
    LAUNCHERS,
    TLS_MODES,
    Account,
    BadValue,
    locate_directory,
    locate_file,
    locate_path,
    locate_user,
    parse_app,
    parse_base_url,
    parse_flag,
    parse_idle_timeout,
    parse_ip,
    parse_launcher,
    parse_module,
    parse_path,
    parse_port,
    parse_timeout,
    parse_tls,
    parse_url,
    parse_user,
)

ENV_PREFIX = "PROVISIONER_"


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know, fixed before the machine starts."""

    token: Secret | None = None
    signing_key: SigningKey | None = None  # --signing-key-file; never recorded (not in public())
    start_url: str | None = None
    complete_url: str | None = None
    progress_url: str | None = None
    port: int | None = 8008  # None: pick a free port
    ip: str = "0.0.0.0"  # noqa: S104 - the spec binds every interface so the researcher can connect
    module: str = "JupyterNotebook"  # "" skips module loading
    timeout: float = 60.0
    notebook_dir: Path | None = None  # None: the home directory
    base_url: str = "/"  # behind a reverse proxy, the path the proxy serves the server under
    idle_timeout: int = 0  # seconds without activity before Jupyter culls kernels and shuts down; 0: never
    launcher: str = "process"  # process: detached in its own session; systemd: a transient systemd unit
    app: str = "notebook"  # the front end: notebook (jupyter-notebook) or lab (jupyter-lab)
    tls: str = "off"  # off: plain HTTP, or the platform's certificate (certfile, keyfile); self-signed: one made here
    certfile: Path | None = None
    keyfile: Path | None = None
    progress_page: bool = False  # the port shows the run's progress (503) until the server takes it
    init_script: Path | None = None
    user: Account | None = None
    home: Path = field(default_factory=Path.home)
    output_dir: Path | None = None  # None: HOME/.jupyter

    @property
    def out(self) -> Path:
        return self.output_dir if self.output_dir is not None else self.home / ".jupyter"

    def endpoint(self, name: str) -> str | None:
        """The URL of a callback endpoint: start or complete (named in states.toml), or progress."""
        return {"start": self.start_url, "complete": self.complete_url, "progress": self.progress_url}.get(name)

    def urls(self) -> dict[str, str | None]:
        """The callback URLs by setting name."""
        return {"start_url": self.start_url, "complete_url": self.complete_url, "progress_url": self.progress_url}

    def public(self) -> dict[str, Any]:
        """The settings without secrets, for the record: no token, and URLs masked (see record.mask_url)."""
        return {
            **{name: mask_url(url) for name, url in self.urls().items()},
            "port": "auto" if self.port is None else self.port,
            "ip": self.ip,
            "module": self.module,
            "timeout": self.timeout,
            "notebook_dir": str(self.notebook_dir) if self.notebook_dir else None,
            "base_url": self.base_url,
            "idle_timeout": self.idle_timeout,
            "launcher": self.launcher,
            "app": self.app,
            "tls": self.tls,
            "certfile": str(self.certfile) if self.certfile else None,
            "keyfile": str(self.keyfile) if self.keyfile else None,
            "progress_page": self.progress_page,
            "init_script": str(self.init_script) if self.init_script else None,
            "user": self.user.name if self.user else None,
            "home": str(self.home),
            "output_dir": str(self.out),
        }


@dataclass(frozen=True)
class Option:
    """A setting that the command line (--NAME), the environment (PROVISIONER_NAME) and a definition's [settings]
    may give. `parse` checks its shape, the same on every machine, so that `jupyter-init check` can judge a
    definition anywhere; `locate` then makes it this machine's (an account, an existing directory)."""

    parse: Callable[[object], Any]
    help: str  # --help; "{default}" is replaced by the default below, so that the two cannot disagree
    kinds: tuple[type, ...]  # what a TOML value in [settings] may be
    metavar: str | None = None
    locate: Callable[[Any], Any] | None = None
    flag: bool = False  # a switch: --NAME takes no value on the command line

    def value(self, given: object) -> Any:
        shaped = self.parse(given)
        return self.locate(shaped) if self.locate is not None else shaped


def default(name: str) -> Any:
    """The default of a setting: the Settings field's, the one source of every default."""
    return next(field.default for field in dataclasses.fields(Settings) if field.name == name)


def shown_default(name: str) -> str:
    value = default(name)
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


# The settings in the order --help lists them.
OPTIONS: Mapping[str, Option] = {
    "port": Option(parse_port, "port to serve on (default {default}), or 'auto' for a free one", (int, str)),
    "ip": Option(parse_ip, "address to bind (default {default}: every interface)", (str,)),
    "module": Option(
        parse_module, "environment module that provides Jupyter (default {default}; '' skips loading)", (str,)
    ),
    "init_script": Option(
        parse_path, "shell script to source first, e.g. an EESSI init/bash", (str,), "PATH", locate_path
    ),
    "timeout": Option(parse_timeout, "seconds the server has to answer (default {default})", (int, float), "S"),
    "output_dir": Option(
        parse_path, "where jupyter_info.txt and jupyter.log go (default ~/.jupyter)", (str,), "DIR", locate_path
    ),
    "user": Option(parse_user, "as root: run the server as this user, in their home", (str,), "NAME", locate_user),
    "notebook_dir": Option(
        parse_path, "the directory the server shows (default: the home directory)", (str,), "DIR", locate_directory
    ),
    "base_url": Option(
        parse_base_url, "the path behind a reverse proxy, e.g. /user/alice/ (default {default})", (str,), "PATH"
    ),
    "idle_timeout": Option(
        parse_idle_timeout, "shut the server down after S idle seconds (default {default}: never)", (int,), "S"
    ),
    "launcher": Option(
        parse_launcher,
        "how the server is started (default {default}): process, detached in a session of its own; systemd, a "
        "transient systemd unit",
        (str,),
        "{" + ",".join(LAUNCHERS) + "}",
    ),
    "app": Option(
        parse_app,
        "the front end (default {default}): notebook, Jupyter Notebook (jupyter-notebook); lab, JupyterLab "
        "(jupyter-lab), with the same token, options and checks",
        (str,),
        "{" + ",".join(APPS) + "}",
    ),
    "tls": Option(
        parse_tls,
        "HTTPS (default {default}): self-signed makes a key and a certificate for this VM; for the platform's own, "
        "give --certfile and --keyfile instead",
        (str,),
        "{" + ",".join(TLS_MODES) + "}",
    ),
    "certfile": Option(
        parse_path,
        "the server's certificate (PEM), e.g. for a DNS name the platform gives the VM",
        (str,),
        "PATH",
        locate_file,
    ),
    "keyfile": Option(parse_path, "the key of --certfile (PEM)", (str,), "PATH", locate_file),
    "progress_page": Option(
        parse_flag,
        "until the server listens, its port answers with a page (503) that shows the run's progress and loads the "
        "server once it answers (default {default}; needs a fixed --port)",
        (bool,),
        flag=True,
    ),
}


def help_text(name: str) -> str:
    return OPTIONS[name].help.format(default=shown_default(name))


# What a definition's [settings] may hold: each one's TOML kinds and its shape check (definition.py takes this, not
# the module, and checks the kind as it checks every other value of the file).
DEFINITION_SETTINGS: Mapping[str, tuple[tuple[type, ...], Callable[[object], object]]] = {
    name: (option.kinds, option.parse) for name, option in OPTIONS.items()
}


def resolve(
    cli: Mapping[str, Any],
    environ: Mapping[str, str],
    definition_settings: Mapping[str, Any],
    token: Secret | None,
    only: Collection[str] | None = None,
) -> Settings:
    """Build Settings from the layers; `cli` holds only the options given (None means not given). `only`: resolve
    just these settings (the others keep their defaults), for a verb that needs no more."""
    values: dict[str, Any] = {}
    for name, option in OPTIONS.items():
        if only is not None and name not in only:
            continue
        env_name = ENV_PREFIX + name.upper()
        if cli.get(name) is not None:
            given, source = cli[name], "--" + name.replace("_", "-")
        elif env_name in environ:
            given, source = environ[env_name], env_name
        elif name in definition_settings:
            given, source = definition_settings[name], f"settings.{name}"
        else:
            continue
        values[name] = _checked(option.value, given, source)
    for name in URL_SETTINGS:
        if cli.get(name) is not None:
            values[name] = _checked(parse_url, cli[name], name.upper())
    _check_tls(values)
    if values.get("progress_page") and "port" in values and values["port"] is None:
        raise UsageError("--progress-page needs a fixed --port: with 'auto' no one knows the address to open")
    home = environ.get("HOME")
    if values.get("user") is not None:
        values["home"] = values["user"].home
    elif home:
        if "\0" in home:
            raise UsageError("HOME: not a path")
        values["home"] = Path(home)
    return Settings(token=token, **values)


def _check_tls(values: Mapping[str, Any]) -> None:
    if (values.get("certfile") is None) != (values.get("keyfile") is None):
        raise UsageError("--certfile and --keyfile go together")
    if values.get("certfile") is not None and values.get("tls", "off") != "off":
        raise UsageError("--tls self-signed and --certfile: one certificate or the other")


def _checked(parse: Callable[[Any], Any], given: object, source: str) -> Any:
    try:
        return parse(given)
    except BadValue as exc:
        raise UsageError(f"{source}: {exc}") from None
