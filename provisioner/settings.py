"""Frozen, typed settings, layered: defaults <- states.toml [settings] <- PROVISIONER_* environment <- command line.

Every value is checked where it enters, with the name the user gave it (`--port`, `PROVISIONER_PORT`,
`settings.port`), so that a mistake is one clear line naming its source.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import pwd
import re
import stat
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from provisioner.errors import UsageError, shown_option, shown_path
from provisioner.record import mask_url

if TYPE_CHECKING:
    from provisioner.signing import SigningKey

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


class BadValue(ValueError):
    """A value a setting cannot take. The message says why; whoever catches it names where the value came from."""


def ascii_text(value: object) -> str:
    """A number's text, in ASCII digits only: int() and float() also read ٨٠٥٣ as 8053, which no one meant."""
    text = str(value).strip()
    if not text.isascii():
        raise ValueError(text)
    return text


def parse_port(value: object) -> int | None:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return None
    try:
        port = int(ascii_text(value)) if not isinstance(value, bool) else -1
    except ValueError:
        raise BadValue(f"{shown_option(value)} is not a port number (1-65535 or 'auto')") from None
    if not 1 <= port <= 65535:
        raise BadValue(f"{shown_option(value)} is out of range (1-65535 or 'auto')")
    return port


def parse_ip(value: object) -> str:
    try:
        address = ipaddress.ip_address(str(value).strip())
    except ValueError:
        raise BadValue(f"{shown_option(value)} is not an IP address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        # A zone (fe80::1%eth0) has no place in a URL a browser opens: the reported address could not be used.
        raise BadValue(f"{shown_option(value)}: an address with a zone (%...) cannot be reported in a URL")
    return str(address)


def parse_timeout(value: object) -> float:
    try:
        timeout = float(ascii_text(value))
    except ValueError:
        raise BadValue(f"{shown_option(value)} is not a number of seconds") from None
    if not 0 < timeout < DAY:  # nan and inf are not either
        raise BadValue(f"{shown_option(value)} must be more than 0 and less than a day")
    return timeout


def parse_base_url(value: object) -> str:
    """A URL path for a server behind a reverse proxy, as Jupyter wants it: /like/this/. Percent-encoded here, once,
    so that Jupyter, the readiness check, the callbacks and the info file all use the one path a browser sends
    (`/ü/` is `/%C3%BC/`). What is encoded already stays as it is: the recorded path reads back the same."""
    text = str(value).strip()
    lone_percent = re.search(r"%(?![0-9A-Fa-f]{2})", text)
    if any(ch.isspace() or not ch.isprintable() or ch in "?#" for ch in text) or "://" in text or lone_percent:
        raise BadValue("a base URL is a path like /user/alice/ (no host, query or spaces)")
    path = "/" + "/".join(part for part in text.split("/") if part) + ("/" if text.strip("/") else "")
    return quote(path, safe="/%!$&'()*+,;=:@-._~")


def parse_idle_timeout(value: object) -> int:
    try:
        seconds = int(ascii_text(value)) if not isinstance(value, bool) else -1
    except ValueError:
        raise BadValue(f"{shown_option(value)} is not a whole number of seconds (0: never)") from None
    if not 0 <= seconds <= YEAR:
        raise BadValue(f"{shown_option(value)} must be 0 (never) or up to a year ({YEAR})")
    return seconds


LAUNCHERS = ("process", "systemd")
APPS = {"notebook": "jupyter-notebook", "lab": "jupyter-lab"}  # each front end and the program that serves it


def parse_launcher(value: object) -> str:
    text = str(value).strip()
    if text not in LAUNCHERS:
        raise BadValue(f"must be one of {', '.join(LAUNCHERS)}")
    return text


def parse_app(value: object) -> str:
    text = str(value).strip()
    if text not in APPS:
        raise BadValue(f"must be one of {', '.join(APPS)}")
    return text


TLS_MODES = ("off", "self-signed")


def parse_tls(value: object) -> str:
    text = str(value).strip()
    if text not in TLS_MODES:
        raise BadValue(f"must be one of {', '.join(TLS_MODES)} (or give --certfile and --keyfile)")
    return text


FLAG_WORDS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def parse_flag(value: object) -> bool:
    """A switch: given on the command line, true in TOML, or one of FLAG_WORDS in the environment."""
    if isinstance(value, bool):
        return value
    word = FLAG_WORDS.get(str(value).strip().lower())
    if word is None:
        raise BadValue("must be one of " + ", ".join(FLAG_WORDS))
    return word


def parse_url(value: object) -> str | None:
    """A callback URL: http or https with a host; empty means no callback (the old script's behaviour)."""
    text = str(value)
    if not text.strip():
        return None
    # Never echo the URL: a mistyped argument could be the token in the wrong place.
    try:
        parts = urlsplit(text)
    except ValueError:  # an unclosed [ of an IPv6 address
        raise BadValue("not an http or https URL with a host") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(ch.isspace() for ch in text):
        raise BadValue("not an http or https URL with a host")
    try:
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise BadValue("the URL's port is not a number from 0 to 65535") from None
    return text


def parse_module(value: object) -> str:
    text = str(value).strip()
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise BadValue("a module name has no spaces or control characters")
    return text


def parse_path(value: object) -> str | None:
    """A path as given (`~` is expanded by locate_path, on the machine that runs); empty means none."""
    text = str(value)
    if not text.strip():
        return None
    if "\0" in text:
        raise BadValue("not a path")
    return text


def parse_user(value: object) -> str:
    """An account's name, as the system's tools accept one; whether it exists is for the machine that runs."""
    name = str(value).strip()
    if not name or name.startswith("-") or any(ch.isspace() or not ch.isprintable() or ch in ":/" for ch in name):
        raise BadValue(f"{shown_option(name)} is not a user name")
    return name


def locate_path(text: str | None) -> Path | None:
    if text is None:
        return None
    try:
        return Path(text).expanduser()
    except RuntimeError:  # ~name of no account
        raise BadValue(f"{shown_path(text)}: there is no such user to expand ~ for") from None


def locate_directory(text: str | None) -> Path | None:
    path = locate_path(text)
    if path is None or text is None:
        return None
    try:
        is_directory = stat.S_ISDIR(path.stat().st_mode)
    except (FileNotFoundError, NotADirectoryError):
        is_directory = False
    except OSError as exc:  # one we may not look at: a line, not a traceback
        raise BadValue(f"{shown_path(text)}: {exc.strerror or exc}") from None
    if not is_directory:
        raise BadValue(f"{shown_path(text)} is not a directory")
    return path


def locate_file(text: str | None) -> Path | None:
    """An existing file, by its absolute path: the server reads it from another directory (the account's home)."""
    path = locate_path(text)
    if path is None or text is None:
        return None
    path = Path(os.path.abspath(path))
    try:
        is_file = stat.S_ISREG(path.stat().st_mode)
    except (FileNotFoundError, NotADirectoryError):
        raise BadValue(f"{shown_path(text)}: no such file") from None
    except OSError as exc:
        raise BadValue(f"{shown_path(text)}: {exc.strerror or exc}") from None
    if not is_file:
        raise BadValue(f"{shown_path(text)} is not a file")
    return path


def locate_user(name: str) -> Account:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise BadValue(f"no such user {shown_option(name)}") from None
    if os.geteuid() not in (0, entry.pw_uid):
        raise BadValue(f"running the server as {name} needs root")
    return Account.of(entry)


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


DAY = 86400
YEAR = 365 * DAY


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

_URLS = ("start_url", "complete_url", "progress_url")


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
    for name in _URLS:
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
