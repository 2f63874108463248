"""What the run reads of root's own before it acts for an account: the token file and the callbacks file.

Each is a file only root can change (as root), read as a regular file of bounded size: a FIFO, a device or a huge
file is a line, not a hang. Neither reaches a command line: what they hold goes to the account's worker in memory.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from provisioner.errors import UsageError, shown_path
from provisioner.files import read_regular
from provisioner.ownership import check_root_input
from provisioner.record import URL_SETTINGS
from provisioner.secret import TOKEN_ENV, Secret
from provisioner.values import BadValue, parse_url

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

CALLBACKS_FILE_ENV = "PROVISIONER_CALLBACKS_FILE"
SIGNING_KEY_FILE_ENV = "PROVISIONER_SIGNING_KEY_FILE"
INPUT_LIMIT = 64 * 1024  # a token is a word and three URLs are a few lines: a larger file is neither


def read_root_input(path: Path, option: str) -> str:
    """The text of `path`, a file only root may change when we are root."""
    check_root_input(path, option)
    try:
        return read_regular(path, INPUT_LIMIT, follow=True).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        # A token given here by mistake must not be printed back: the path is shown only when it looks like one.
        raise UsageError(f"{option}: cannot read {shown_path(path)}: {getattr(exc, 'strerror', None) or exc}") from None


def token_file(path: Path) -> Secret:
    """--token-file: its content without the line ends at its end."""
    return Secret(read_root_input(path, "--token-file").rstrip("\r\n"))


def callbacks_file(path: Path, option: str = "--callbacks-file") -> dict[str, str]:
    """--callbacks-file: `start_url = "…"`, `complete_url = "…"`, `progress_url = "…"` (TOML), each optional, each an
    http(s) URL; the URLs then stay off every command line, as the token does."""
    try:
        table = tomllib.loads(read_root_input(path, option))
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{option}: {shown_path(path)} is not valid TOML: {exc}") from None
    unknown = sorted(set(table) - set(URL_SETTINGS))
    if unknown:
        names = ", ".join(repr(key) for key in unknown) if all(len(key) < 32 for key in unknown) else "some"
        raise UsageError(f"{option}: unknown keys {names}; it holds {', '.join(URL_SETTINGS)}")
    urls = {}
    for key, value in table.items():
        try:
            url = parse_url(value) if isinstance(value, str) else None
        except BadValue:
            url = None
        if url is None:
            # Never echoed: a URL may hold a password or a key.
            raise UsageError(f"{option}: {key} is not an http or https URL with a host")
        urls[key] = url
    return urls


def token(given: str | None, path: Path | None) -> Secret | None:
    """The token from the old call's word, the token file or $JUPYTER_TOKEN, in that order; then out of our
    environment, which every process we start would otherwise inherit."""
    from_env = os.environ.pop(TOKEN_ENV, None)
    if given is not None:
        return Secret(given)
    if path is not None:
        return token_file(path)
    return Secret(from_env) if from_env is not None else None


def callback_urls(
    words: Mapping[str, str | None], options: Mapping[str, str | None], path: Path | None
) -> dict[str, str | None]:
    """The callback URLs from the old call's words, the options or a callbacks file (--callbacks-file, else
    $PROVISIONER_CALLBACKS_FILE): each from one of them."""
    from_file: dict[str, str] = {}
    named = path or os.environ.get(CALLBACKS_FILE_ENV) or None
    if named is not None:
        from_file = callbacks_file(Path(named), "--callbacks-file" if path else CALLBACKS_FILE_ENV)
    return {
        name: _one_of(name.upper(), words.get(name), options.get(name), from_file.get(name)) for name in URL_SETTINGS
    }


def _one_of(name: str, *given: str | None) -> str | None:
    values = [value for value in given if value is not None]
    if len(values) > 1:
        raise UsageError(f"{name} is given more than once (the old call's words, an option, --callbacks-file)")
    return values[0] if values else None


def signing_key_file(path: Path | None) -> tuple[Path, str] | None:
    """--signing-key-file, else $PROVISIONER_SIGNING_KEY_FILE, with the name to say it by."""
    if path is not None:
        return path, "--signing-key-file"
    named = os.environ.get(SIGNING_KEY_FILE_ENV)
    return (Path(named), SIGNING_KEY_FILE_ENV) if named else None
