"""Privilege separation: root acting for an account keeps only what needs root, as OpenSSH's monitor does.

The account named by `--user` (or owning the output directory that `resume`, `stop` or `state` is given) is not
trusted by root: everything it can write is attacker input. So before root touches anything of that account's, it
forks:

    root: the monitor                              the account: the worker
    ---------------------------------------------  ----------------------------------------------------------
    has read root's own inputs (the token file,    initgroups, setgid, setuid, for good; then everything
    the definition) and resolved the account       else with the account's rights only: module commands,
    waits for the worker, passes SIGTERM, SIGINT   the output directory and every file in it, the record,
    and SIGHUP on, exits with the worker's code    the server, the callbacks
    starts or stops the server's systemd unit  <-- asks, over a socket pair (--launcher systemd only)

The kernel then refuses what the account could not do itself, and a planted link, FIFO or edited record gains
nothing. What the monitor reads from the worker is data, checked as such: it starts a unit only as the account
(User=) under a name of the account's, and stops only such a unit.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import socket
import stat
import sys
from pathlib import Path
from typing import Any, Callable

from provisioner.errors import UsageError
from provisioner.settings import Account

REQUEST_LIMIT = 1024 * 1024  # a request holds an environment and a command line: far less than this


class _Worker:
    """In the worker only: its end of the socket pair to the monitor."""

    channel: socket.socket | None = None


_worker = _Worker()
# What the monitor does for the worker's requests, by name.
Service = Callable[[Account, dict[str, Any]], dict[str, Any]]
_SERVICES: dict[str, Service] = {}


def serves(op: str) -> Callable[[Service], Service]:
    """Register what the monitor does, as root, for the worker's request `op` (the only things root does for it)."""

    def register(function: Service) -> Service:
        _SERVICES[op] = function
        return function

    return register


def monitored() -> bool:
    """Whether this is a worker whose monitor does what needs root."""
    return _worker.channel is not None


def ask(op: str, **fields: Any) -> dict[str, Any]:
    """Ask the monitor to do `op`; its answer, or OSError when it refused or failed (with its reason)."""
    channel = _worker.channel
    assert channel is not None, "only a worker has a monitor to ask"
    channel.sendall(json.dumps({"op": op, **fields}).encode() + b"\n")
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = channel.recv(65536)
        if not chunk:
            raise OSError("the provisioner's root process is gone")
        reply += chunk
    answer: dict[str, Any] = json.loads(reply)
    if "error" in answer:
        raise OSError(str(answer["error"]))
    return answer


def act_for(account: Account | None) -> None:
    """As root for another account: go on as that account, with root's part left in a monitor. Otherwise nothing."""
    if account is not None and os.geteuid() == 0 and account.uid != 0:
        become(account)


def owner_of(path: Path, what: str = "--output-dir") -> Account | None:
    """As root: the account that owns `path` (the output directory), whom root acts as there; None to act as root.

    The deepest existing part of the path decides: a directory an account owns (or would create in its own
    directory) is that account's. Root acts as itself only where no other account can change any part of the
    path (every directory on it root's, and not writable by others unless sticky, as /tmp is); otherwise it refuses.
    """
    if os.geteuid() != 0:
        return None
    real = Path(os.path.realpath(path))
    existing = next(part for part in (real, *real.parents) if os.path.lexists(part))
    owner = os.lstat(existing).st_uid
    if owner != 0:
        try:
            return Account.of(pwd.getpwuid(owner))
        except KeyError:
            raise UsageError(f"{path} belongs to uid {owner}, which has no account; refusing to act on it") from None
    for part in (existing, *existing.parents):
        info = os.lstat(part)
        writable_by_others = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not info.st_mode & stat.S_ISVTX
        if info.st_uid != 0 or stat.S_ISLNK(info.st_mode) or writable_by_others:
            raise UsageError(
                f"{what}: {part} can be changed by another account, so root will not use {path}; "
                "give one that only root can change"
            )
    return None


def check_root_input(path: Path, what: str) -> None:
    """As root: an input read as root (--token-file, --states) must be one that no other account can change."""
    owner = owner_of(path, what)
    if owner is not None:
        raise UsageError(f"{what}: {path} is {owner.name}'s; as root, give a file that only root can change")


def become(account: Account) -> None:
    """Fork. The child returns, with only `account`'s rights for good; the parent stays root as its monitor, serves
    its requests and exits with its exit code, never returning."""
    monitor_end, worker_end = socket.socketpair()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        monitor_end.close()
        _drop(account)
        _worker.channel = worker_end
        return
    worker_end.close()
    code = 70  # EX_SOFTWARE, if the monitor itself fails: it must never fall through into the worker's path as root
    try:
        code = _monitor(pid, monitor_end, account)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _drop(account: Account) -> None:
    """Give up root for good: supplementary groups, then group, then user (the order that leaves none behind)."""
    os.initgroups(account.name, account.gid)
    os.setresgid(account.gid, account.gid, account.gid)
    os.setresuid(account.uid, account.uid, account.uid)
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:  # pragma: no cover - the kernel let us back: never go on as root by mistake
        os._exit(70)
    os.environ.update(account.environment())
    try:
        os.chdir(account.home)
    except OSError:
        os.chdir("/")
    from provisioner import output

    output.after_fork()


def _monitor(pid: int, channel: socket.socket, account: Account) -> int:
    """Serve the worker's requests until it closes its end, then reap it: its exit code, or 128 + its signal."""

    def forward(signum: int, frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for caught in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(caught, forward)
    with channel, channel.makefile("rb") as requests:
        while line := requests.readline(REQUEST_LIMIT):
            channel.sendall(json.dumps(_serve(account, line)).encode() + b"\n")
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def _serve(account: Account, line: bytes) -> dict[str, Any]:
    """One request, whatever the worker sent: an answer or an error, never an exception out of the monitor."""
    try:
        request = json.loads(line)
        service = _SERVICES[request.pop("op")]
    except Exception:  # the worker's bytes are data: nested too deep, not JSON, not an object, an unknown op...
        return {"error": "the monitor does not understand that request"}
    try:
        return service(account, request)
    except Exception as exc:
        return {"error": str(exc)}
