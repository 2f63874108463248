"""validating: a usable token, and an output directory we can write to and keep private."""

from __future__ import annotations

import ipaddress
import os
import stat

from provisioner.context import RunContext
from provisioner.errors import TOKEN_MIN, StepFailed
from provisioner.output import log
from provisioner.secret import Secret

# Fewer different characters than this (`aaaa...`, `abab...`) is no secret however long; a random token of 16
# characters has fewer with a chance below one in a billion. Words are not judged: no dictionary is on a VM, and a
# platform that generates its tokens (48 hex digits, say) never meets one.
DISTINCT_MIN = 4
ADVISED = 32  # what a warning asks for: as many characters as secrets.token_hex(16)

REASONS = ("no_token", "output_unwritable")


def run(ctx: RunContext) -> None:
    check_token(ctx)
    prepare_output_dir(ctx)
    if ctx.unrecordable is not None:
        # The record is the only handle on a server (stop, resume): without one, no server may start.
        raise StepFailed("output_unwritable", ctx.unrecordable)


def token_problem(token: Secret | None, ip: str) -> str | None:
    """Why `token` cannot guard a server listening on `ip`, or None."""
    if token is None:
        return "no token given (TOKEN argument, --token-file or JUPYTER_TOKEN)"
    value = token.reveal()
    # The token goes into an HTTP header and a URL: it must be one word of printable ASCII.
    if not value.strip():
        return "the token is empty"
    if any(not (ch.isascii() and ch.isprintable()) or ch.isspace() for ch in value):
        return "the token must be printable ASCII with no spaces or control characters"
    weak = weakness(value)
    address = ipaddress.ip_address(ip)
    # ::ffff:127.0.0.1 is loopback on every Python (3.13 says so itself, older ones do not).
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    if weak is not None and not (mapped or address).is_loopback:
        # Anyone who can reach the port may guess it.
        return f"{weak} for a server listening on {ip} (beyond loopback)"
    return None


def weakness(value: str) -> str | None:
    """Why `value` is too easy to guess to guard a server others can reach, or None."""
    if len(value) < TOKEN_MIN:
        return f"the token is {len(value)} characters long; at least {TOKEN_MIN} are needed"
    if len(set(value)) < DISTINCT_MIN:
        return f"the token has fewer than {DISTINCT_MIN} different characters"
    return None


def check_token(ctx: RunContext) -> None:
    problem = token_problem(ctx.settings.token, ctx.settings.ip)
    if problem is not None:
        raise StepFailed("no_token", problem)
    value = ctx.settings.token.reveal() if ctx.settings.token is not None else ""
    weak = weakness(value)
    if weak is not None:
        log.warning("warning: %s; accepted only because the server listens on loopback", weak)
    elif len(value) < ADVISED:
        log.warning(
            "warning: the token is %d characters long; %d or more random characters are advised", len(value), ADVISED
        )


def prepare_output_dir(ctx: RunContext) -> None:
    """Create the output directory 0700 (it will hold the token), or tighten one we own.

    As root for a user this runs with the user's rights (privsep): a directory they could not use themselves,
    or a link to one, fails here instead of being taken over.
    """
    out = ctx.out
    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = out.stat()
        if not stat.S_ISDIR(info.st_mode):
            raise StepFailed("output_unwritable", f"{out} is not a directory")
        if os.geteuid() in (0, info.st_uid) and stat.S_IMODE(info.st_mode) != 0o700:
            out.chmod(0o700)
    except FileExistsError:
        raise StepFailed("output_unwritable", f"{out} exists and is not a directory") from None
    except OSError as exc:
        raise StepFailed("output_unwritable", f"cannot use {out}: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise StepFailed("output_unwritable", f"{out} is not writable")
