"""Callback signatures: keyed with the token by default, or with a key of the platform's own (--signing-key-file).

Signed with the token, a callback proves "someone who knows the token" sent it: the researcher does (it is in their
info file). Signed with a platform key that only root can read, it proves that jupyter-init, run by root on the VM,
sent it, and nobody else: not the researcher, not a copy of the token elsewhere.

Run by root for an account (--user), the key never reaches the account's worker: the monitor reads it into memory
it wipes in the worker right after the fork, and the worker asks the monitor to sign each body. A monitor that
signed whatever the worker asked would be a signing oracle for the account, so it signs only what it can vouch for:
a body of our own fields, stamped now, and one that names a server's address (`url`: the server is ready) only once
root has found that server itself, as the account's process listening on the port root was told, answering with
root's token and refusing without it, showing the certificate named, at the address root would report. Without
privilege separation (the account runs jupyter-init itself), the key is the account's and proves no more than that.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from provisioner import files, ownership, privsep
from provisioner.boot import Boot
from provisioner.definition import Definition
from provisioner.errors import UsageError, shown_path
from provisioner.secret import SigningKey, sign
from provisioner.settings import Settings
from provisioner.values import Account

KEY_MIN = 32  # bytes: a key the platform generated, not a word
KEY_MAX = 4096
CLOCK_SLACK = 30  # seconds a body's timestamp may be off root's clock
# The fields a callback may have; their values are checked where root can check them.
FIELDS = frozenset(
    {"status", "reason", "state", "port", "pid", "url", "fingerprint", "message", "timestamp", "boot", "boot_id"}
)

Signer = Callable[[bytes], str]  # a body's signature header: what signs each callback


def read_key(path: Path, option: str) -> SigningKey:
    """The key in `path` (its bytes, without the line ends at its end), read straight into a buffer of its own: no
    other copy of it is left in memory that a forked worker would inherit. As root, a file only root can change."""
    ownership.check_root_input(path, option)
    buffer = bytearray(KEY_MAX + 1)
    try:
        fd = files.open_regular(path, os.O_RDONLY, follow=True)
        with os.fdopen(fd, "rb", buffering=0) as handle:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
            if mode & 0o077:  # as ssh refuses a private key others can read: it would be theirs as much as root's
                raise UsageError(f"{option}: {shown_path(path)} can be read by others (mode {mode:o}); make it 0600")
            length = 0
            while length <= KEY_MAX and (got := handle.readinto(memoryview(buffer)[length:])):
                length += got
    except OSError as exc:
        raise UsageError(f"{option}: cannot read {shown_path(path)}: {exc.strerror or exc}") from None
    while length and buffer[length - 1] in b"\r\n":
        length -= 1
    key = SigningKey(buffer, length)
    if not KEY_MIN <= length <= KEY_MAX:
        key.wipe()
        raise UsageError(f"{option}: a signing key is {KEY_MIN} to {KEY_MAX} bytes; {shown_path(path)} holds {length}")
    return key


@dataclass(frozen=True)
class Vocabulary:
    """The words a callback of this definition may hold, and those that say the server is ready."""

    statuses: frozenset[str]
    states: frozenset[str]
    reasons: frozenset[str]
    ready: frozenset[str]  # final states no failure leads to, and the statuses sent on entering them

    @classmethod
    def of(cls, definition: Definition) -> Vocabulary:
        failing = {t.dest for t in definition.transitions if any(notify.reason for notify in t.notify)}
        finals = {state.name for state in definition.states if state.final} - failing
        entering = {notify.status for t in definition.transitions if t.dest in finals for notify in t.notify}
        states = frozenset(state.name for state in definition.states)
        notified = frozenset(notify.status for t in definition.transitions for notify in t.notify)
        return cls(notified | states, states, frozenset(definition.reasons), frozenset(finals | entering))


@dataclass
class _Custody:
    """In the monitor: what it signs with and checks against, root's own settings, definition and key, never the
    worker's word."""

    settings: Settings | None = None
    words: Vocabulary | None = None
    key: SigningKey | None = None
    boot: Boot | None = None  # run by the boot unit: the only boot a body may name


_custody = _Custody()


def entrust(settings: Settings, definition: Definition, boot: Boot | None = None) -> dict[str, privsep.Service]:
    """Before privsep.act_for, as root: keep the key for the monitor; the service that signs for the worker."""
    _custody.settings = _custody.words = _custody.key = _custody.boot = None
    if settings.signing_key is None or settings.user is None or os.geteuid() != 0:
        return {"sign": privsep.refusal("sign", "--signing-key-file")}
    _custody.settings, _custody.words, _custody.key = settings, Vocabulary.of(definition), settings.signing_key
    _custody.boot = boot
    return {"sign": sign_for}


def signer(settings: Settings, *, token_signs: bool) -> Signer | None:
    """How this process signs its callbacks: the platform's key (asking the monitor, where the key stayed with
    it, after wiping the worker's copy), else the token if it may sign; None when there is neither."""
    key = settings.signing_key
    if key is not None and privsep.monitored():
        key.wipe()
        return _by_monitor
    if key is not None:
        return key.sign
    if settings.token is not None and token_signs:
        token = settings.token.reveal().encode()
        return lambda body: sign(body, token)
    return None


def _by_monitor(body: bytes) -> str:
    answer = privsep.ask("sign", body=body.decode("ascii"))
    signature = answer.get("signature")
    if not isinstance(signature, str):
        raise OSError("the monitor's answer holds no signature")
    return signature


def sign_for(account: Account, request: dict[str, Any]) -> dict[str, Any]:
    """As root, for the worker: a signature over a body root can vouch for (see the module's docstring)."""
    settings, words, key = _custody.settings, _custody.words, _custody.key
    if settings is None or words is None or key is None:
        raise ValueError("root holds no signing key")
    body = request["body"]
    if not (isinstance(body, str) and body.isascii()):
        raise ValueError("not a callback body")
    vouch(parse_body(body, words), account, settings, words, _custody.boot)
    return {"signature": key.sign(body.encode("ascii"))}


def parse_body(body: str, words: Vocabulary) -> dict[str, str]:
    """The body's fields: each once, each one of ours, encoded as the reporter encodes them (so that no receiver
    can read the same bytes another way), its status, state and reason words of the definition."""
    try:
        pairs = parse_qsl(body, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise ValueError("not a callback body of jupyter-init's") from None
    fields = dict(pairs)
    if len(fields) != len(pairs) or not set(fields) <= FIELDS or urlencode(pairs) != body:
        raise ValueError("not a callback body of jupyter-init's")
    if fields.get("status") not in words.statuses:
        raise ValueError("the status is not one of the definition's")
    if fields.get("state", "") not in words.states | {""} or fields.get("reason", "") not in words.reasons | {""}:
        raise ValueError("the state or the reason is not one of the definition's")
    return fields


def vouch(
    fields: dict[str, str], account: Account, settings: Settings, words: Vocabulary, boot: Boot | None = None
) -> None:
    """ValueError unless root can stand behind `fields`: stamped now, with the port root was given and the boot root
    counted, and a server said to be ready (or its address given) only once root found it itself."""
    stamp = fields.get("timestamp", "")
    if not (stamp.isascii() and stamp.isdigit() and abs(int(stamp) - time.time()) <= CLOCK_SLACK):
        raise ValueError("the body is not stamped with the time")
    named = {name: fields[name] for name in ("boot", "boot_id") if name in fields}
    if named and (boot is None or named != boot.fields()):
        raise ValueError("the body names a boot root is not running for")
    port = fields.get("port")
    if port is not None and settings.port is not None and port != str(settings.port):
        raise ValueError(f"port {port} is not the one root was given")
    if "url" in fields or fields["status"] in words.ready or fields.get("state") in words.ready:
        _found_server(fields, account, settings)


def _found_server(fields: dict[str, str], account: Account, settings: Settings) -> None:
    from provisioner import netinfo, server
    from provisioner.probe import probe

    pid, port = fields.get("pid", ""), fields.get("port", "")
    if not (pid.isascii() and pid.isdigit() and port.isascii() and port.isdigit()):
        raise ValueError("a ready server is named without its pid and port")
    pid_n, port_n = int(pid), int(port)
    if server.owner(pid_n) != account.uid or not netinfo.listens(pid_n, port_n):
        raise ValueError(f"no process of {account.name}'s listens on port {port_n}")
    pin = fields.get("fingerprint") or None
    if (pin is None) != (settings.tls == "off" and settings.certfile is None):
        raise ValueError("a certificate is named where root asked for none, or none where root asked for one")
    if "url" in fields:
        scheme = "https" if pin is not None else "http"
        where = netinfo.server_url(settings.ip, port_n, settings.base_url, netinfo.vm_address(settings.ip), scheme)
        if fields["url"] != where:
            raise ValueError("the URL is not where root finds the server")
    host = netinfo.local_host(settings.ip)
    token = settings.token.reveal() if settings.token is not None else None
    if token is None or probe(host, port_n, token, settings.base_url, pin=pin) != 200:
        raise ValueError(f"the server on port {port_n} does not answer with root's token")
    if probe(host, port_n, None, settings.base_url, pin=pin) != 403:
        raise ValueError(f"the server on port {port_n} does not refuse a request without the token")
