"""Frozen, typed settings, layered: defaults <- states.toml [settings] <- PROVISIONER_* environment <- command line.

Every value is checked where it enters, with the name the user gave it (`--port`, `PROVISIONER_PORT`,
`settings.port`), so that a mistake is one clear line naming its source.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from provisioner.errors import UsageError
from provisioner.record import mask_url

TOKEN_ENV = "JUPYTER_TOKEN"  # noqa: S105 - the variable's name, not a token
ENV_PREFIX = "PROVISIONER_"


class Secret:
    """The token. Its repr and str never show the value, so it cannot leak through a log line or a dump."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Account:
    """The VM's user the server runs as, when the provisioner is started as root (cloud-init runs as root)."""

    name: str
    uid: int
    gid: int  # its supplementary groups are the system's to say: privsep drops to them with initgroups
    home: Path
    shell: str

    @classmethod
    def of(cls, entry: pwd.struct_passwd) -> Account:
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), entry.pw_shell or "/bin/sh")

    def environment(self) -> dict[str, str]:
        return {"HOME": str(self.home), "USER": self.name, "LOGNAME": self.name, "SHELL": self.shell}


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know, fixed before the machine starts."""

    token: Secret | None = None
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
            "init_script": str(self.init_script) if self.init_script else None,
            "user": self.user.name if self.user else None,
            "home": str(self.home),
            "output_dir": str(self.out),
        }


def parse_port(value: object, source: str) -> int | None:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return None
    try:
        port = int(str(value).strip()) if not isinstance(value, bool) else -1
    except ValueError:
        raise UsageError(f"{source}: {value!r} is not a port number (1-65535 or 'auto')") from None
    if not 1 <= port <= 65535:
        raise UsageError(f"{source}: {value!r} is out of range (1-65535 or 'auto')")
    return port


def parse_ip(value: object, source: str) -> str:
    text = str(value).strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise UsageError(f"{source}: {value!r} is not an IP address") from None


def parse_timeout(value: object, source: str) -> float:
    try:
        timeout = float(str(value).strip())
    except ValueError:
        raise UsageError(f"{source}: {value!r} is not a number of seconds") from None
    if not 0 < timeout < 86400:
        raise UsageError(f"{source}: {value!r} must be more than 0 and less than a day")
    return timeout


def parse_base_url(value: object, source: str) -> str:
    """A URL path for a server behind a reverse proxy, as Jupyter wants it: /like/this/."""
    text = str(value).strip()
    if any(ch.isspace() or not ch.isprintable() or ch in "?#%" for ch in text) or "://" in text:
        raise UsageError(f"{source}: a base URL is a path like /user/alice/ (no host, query or spaces)")
    return "/" + "/".join(part for part in text.split("/") if part) + ("/" if text.strip("/") else "")


def parse_idle_timeout(value: object, source: str) -> int:
    try:
        seconds = int(str(value).strip())
    except ValueError:
        raise UsageError(f"{source}: {value!r} is not a whole number of seconds (0: never)") from None
    if seconds < 0:
        raise UsageError(f"{source}: {value!r} must be 0 (never) or more")
    return seconds


LAUNCHERS = ("process", "systemd")


def parse_launcher(value: object, source: str) -> str:
    text = str(value).strip()
    if text not in LAUNCHERS:
        raise UsageError(f"{source}: must be one of {', '.join(LAUNCHERS)}")
    return text


def parse_directory(value: object, source: str) -> Path | None:
    path = parse_path(value, source)
    if path is None:
        return None
    try:
        is_directory = stat.S_ISDIR(path.stat().st_mode)
    except (FileNotFoundError, NotADirectoryError):
        is_directory = False
    except OSError as exc:  # one we may not look at: a line, not a traceback
        raise UsageError(f"{source}: {path}: {exc.strerror or exc}") from None
    if not is_directory:
        raise UsageError(f"{source}: {path} is not a directory")
    return path


def parse_url(value: object, source: str) -> str | None:
    """A callback URL: http or https with a host; empty means no callback (the old script's behaviour)."""
    text = str(value)
    if not text.strip():
        return None
    try:
        parts = urlsplit(text)
    except ValueError:  # an unclosed [ of an IPv6 address
        raise UsageError(f"{source}: not an http or https URL with a host") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(ch.isspace() for ch in text):
        # Never echo the URL: a mistyped argument could be the token in the wrong place.
        raise UsageError(f"{source}: not an http or https URL with a host")
    try:
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise UsageError(f"{source}: the URL's port is not a number from 0 to 65535") from None
    return text


def parse_module(value: object, source: str) -> str:
    text = str(value).strip()
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise UsageError(f"{source}: a module name has no spaces or control characters")
    return text


def parse_path(value: object, source: str) -> Path | None:
    text = str(value)
    if not text.strip():
        return None
    if "\0" in text:
        raise UsageError(f"{source}: not a path")
    return Path(text).expanduser()


def parse_user(value: object, source: str) -> Account:
    name = str(value).strip()
    try:
        entry = pwd.getpwnam(name)
    except (KeyError, ValueError):  # ValueError: a NUL in the name
        raise UsageError(f"{source}: no such user {name!r}") from None
    if os.geteuid() not in (0, entry.pw_uid):
        raise UsageError(f"{source}: running the server as {name} needs root")
    return Account.of(entry)


# The settings that states.toml and the environment may set, each with the parser that checks it.
SETTING_PARSERS: Mapping[str, Callable[[object, str], Any]] = {
    "port": parse_port,
    "ip": parse_ip,
    "module": parse_module,
    "timeout": parse_timeout,
    "init_script": parse_path,
    "output_dir": parse_path,
    "user": parse_user,
    "notebook_dir": parse_directory,
    "base_url": parse_base_url,
    "idle_timeout": parse_idle_timeout,
    "launcher": parse_launcher,
}

_URLS = ("start_url", "complete_url", "progress_url")


def resolve(
    cli: Mapping[str, Any],
    environ: Mapping[str, str],
    definition_settings: Mapping[str, Any],
    token: Secret | None,
) -> Settings:
    """Build Settings from the layers; `cli` holds only the options given (None means not given)."""
    values: dict[str, Any] = {}
    for name, parser in SETTING_PARSERS.items():
        env_name = ENV_PREFIX + name.upper()
        if cli.get(name) is not None:
            values[name] = parser(cli[name], "--" + name.replace("_", "-"))
        elif env_name in environ:
            values[name] = parser(environ[env_name], env_name)
        elif name in definition_settings:
            values[name] = parser(definition_settings[name], f"settings.{name}")
    for name in _URLS:
        if cli.get(name) is not None:
            values[name] = parse_url(cli[name], name.upper())
    home = environ.get("HOME")
    if values.get("user") is not None:
        values["home"] = values["user"].home
    elif home:
        values["home"] = Path(home)
    return Settings(token=token, **values)
