"""Each setting's value checked where it enters: its shape the same on every machine (`parse_*`), then what it names
on this one (`locate_*`: a path, an existing directory or file, an account)."""

from __future__ import annotations

import ipaddress
import os
import pwd
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from provisioner.errors import shown_option, shown_path

DAY = 86400
YEAR = 365 * DAY


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
