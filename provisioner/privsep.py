"""Privilege separation: root acting for an account keeps only what needs root, as OpenSSH's monitor does.

The account named by `--user` (or owning the output directory that `resume`, `stop` or `state` is given) is not
trusted by root: everything it can write is attacker input. So before root touches anything of that account's, it
forks:

    root: the monitor                              the account: the worker
    ---------------------------------------------  ----------------------------------------------------------
    has read root's own inputs (the token file,    setsid, root's environment reset, then initgroups, setgid,
    the definition) and resolved the account       setuid, for good; then everything else with the account's
    waits for the worker, passes SIGTERM, SIGINT   rights only: module commands, the output directory and
    and SIGHUP on, exits with the worker's code;   every file in it, the record, the server, the callbacks
    kills it when held stopped, deaf, or past
    the time its settings allow
    starts (if root asked) or stops the        <-- asks, over a socket pair (--launcher systemd only)
    account's systemd unit

The kernel then refuses what the account could not do itself, and a planted link, FIFO or edited record gains
nothing. What the monitor reads from the worker is data, checked as such: it starts a unit only as the account
(User=) under a name of the account's, and stops only such a unit.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import signal
import socket
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, NoReturn

from provisioner.errors import UsageError, shown_path
from provisioner.exits import SIGNALS, ExitCode
from provisioner.settings import Account

# Root's environment variables the worker keeps (as sudo's env_reset keeps a few): the rest, root's secrets
# included, never reaches the account's processes.
KEPT = frozenset(
    {"PATH", "LANG", "LANGUAGE", "TZ", "MODULEPATH", "MODULESHOME", "LOADEDMODULES", "_LMFILES_"}
    | {"http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"}
    | {"REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"}
)
KEPT_PREFIXES = ("LC_", "LMOD", "__LMOD", "MODULES_", "__MODULES_", "PROVISIONER_")
REQUEST_LIMIT = 1024 * 1024  # a request holds an environment and a command line: far less than this


def is_kept(name: str) -> bool:
    """Whether root's environment variable `name` is one the account's worker keeps."""
    return name in KEPT or name.startswith(KEPT_PREFIXES)


class _Worker:
    """In the worker only: its end of the socket pair to the monitor."""

    channel: socket.socket | None = None
    asking: threading.Lock = threading.Lock()


_worker = _Worker()
# What the monitor does for the worker's requests, by name.
Service = Callable[[Account, dict[str, Any]], dict[str, Any]]
_SERVICES: dict[str, Service] = {}
_SERVICES_ALWAYS = ("stop",)  # stopping the account's own unit: always; starting one: only when root asked


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
    with _worker.asking:  # one request and its answer at a time: the callbacks' threads ask too (signing)
        channel.sendall(json.dumps({"op": op, **fields}).encode() + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = channel.recv(65536)
            if not chunk:
                raise OSError("jupyter-init's root process is gone")
            reply += chunk
    answer: dict[str, Any] = json.loads(reply)
    if "error" in answer:
        raise OSError(str(answer["error"]))
    return answer


def act_for(account: Account | None, *, deadline: float, grants: frozenset[str] = frozenset()) -> None:
    """As root for another account: go on as that account, with root's part left in a monitor. Otherwise nothing.

    `deadline`: seconds the worker may take in all before the monitor kills it (what the account controls can make
    any step wait: a FUSE mount of its own, a definition of its own). `grants`: what the monitor may do for it as
    root, beyond answering (e.g. "launch" a systemd unit): only what root's own command line asked for.
    """
    if account is not None and os.geteuid() == 0 and account.uid != 0:
        become(account, deadline=deadline, grants=grants)


ANYONE = -1  # among the accounts that can change a path: a group's members, or every account
MAX_LINKS = 40  # as the kernel's ELOOP
ACL = "system.posix_acl_access"


def owner_of(path: Path, what: str = "--output-dir") -> Account | None:
    """As root: the account that controls `path`, whom root acts as there; None when only root does.

    An account controls a path when it can change the path or the way to it: it owns a directory on the way (and so
    can rename or replace what is in it), or may write in one, or owns the directory at its end (or, where the path
    does not exist yet, the directory it would be made in). Root acts as that account, which can then do nothing
    it could not do itself, however it changes the path afterwards; root acts as itself only where no other account
    can change any of it. More than one account, a group, an ACL, a link another account could have made:
    refused. The way is walked part by part with lstat, never through a link blindly, and where it ends must be
    where the kernel's own lookup of the path ends (a link in /proc leads elsewhere than it reads).
    """
    if os.geteuid() != 0:
        return None
    changers = _Walk(path, what).changers()
    changers.discard(0)
    if not changers:
        return None
    if ANYONE in changers or len(changers) > 1:
        raise UsageError(
            f"{what}: {shown_path(path)} can be changed by {_named(changers)}, so root will not use it; "
            "give one that only root, or only one account, can change"
        )
    [uid] = changers
    try:
        return Account.of(pwd.getpwuid(uid))
    except KeyError:
        raise UsageError(
            f"{what}: {shown_path(path)} belongs to uid {uid}, which has no account; refusing it"
        ) from None


def _named(changers: set[int]) -> str:
    """Who can change a path, in words: the accounts by name, then "any account" for a group, an ACL or everyone."""
    names = []
    for uid in sorted(changers - {ANYONE}):
        try:
            names.append(pwd.getpwuid(uid).pw_name)
        except KeyError:
            names.append(f"uid {uid}")
    if ANYONE in changers:
        names.append("any account (through its group, an ACL or its mode)")
    return " and ".join(names)


def check_output_dir(path: Path, account: Account) -> None:
    """As root for `account`: its output directory must be one only it (or root) controls; another account's would
    hand the record, and so what a later `resume` runs as `account`, to that other account."""
    # The account's own links are followed: what they lead to, the worker reaches with the account's rights alone.
    others = _Walk(path, "--output-dir", trusted=account.uid).changers() - {0, account.uid}
    if others:
        raise UsageError(
            f"--output-dir: {shown_path(path)} can be changed by {_named(others)}; as root for {account.name}, give "
            f"a directory only {account.name} (or root) can change"
        )


class _Walk:
    """One walk of a path from /, resolving root's own links by hand, collecting who could change each part."""

    def __init__(self, path: Path, what: str, trusted: int = 0) -> None:
        self.path = path if path.is_absolute() else Path(os.getcwd()) / path  # as given: `..` is the walk's
        self.what = what
        self.trusted = {0, trusted}  # whose links may be followed: root's, and the account root acts for
        self.given = shown_path(path)  # not made absolute: a token given here by mistake stays unshown

    def refuse(self, why: str) -> NoReturn:
        raise UsageError(f"{self.what}: {self.given}: {why}")

    def changers(self) -> set[int]:
        """The uids that can change the path or the way to it (ANYONE for a group or everyone); 0 is root."""
        pending = [(name, False) for name in self.path.parts[1:]]  # (name, whether a link's target gave it)
        current, info, links = Path("/"), os.lstat("/"), 0
        changers: set[int] = set()
        while pending:
            name, from_link = pending.pop(0)
            if name == "..":  # as the kernel does: the parent of where the walk is, links already resolved
                current = current.parent
                info = os.lstat(current)
                continue
            child = current / name
            child_info = self.lstat(child)
            if child_info is None:
                if from_link or any(linked for _, linked in pending):
                    self.refuse(f"{child} does not exist, and a link leads through it")
                self.same_as_the_kernel_finds(info, len(pending) + 1)
                return changers | _writers(current, info)  # whoever may make it there
            changers |= _entry_changers(current, info, child_info)
            if stat.S_ISLNK(child_info.st_mode):
                links += 1
                if changers - self.trusted or links > MAX_LINKS:
                    self.refuse(f"{child} is a link another account could have made; give the real path")
                target = Path(os.readlink(child))
                pending = [
                    (part, True) for part in (target.parts[1:] if target.is_absolute() else target.parts)
                ] + pending
                if target.is_absolute():
                    current, info = Path("/"), os.lstat("/")
                continue
            current, info = child, child_info
        self.same_as_the_kernel_finds(info, 0)
        # Whoever may write in it, or to it: for a directory, sticky or not (anyone may add to /tmp).
        return changers | _writers(current, info)

    def lstat(self, path: Path) -> os.stat_result | None:
        try:
            return os.lstat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self.refuse(f"cannot look at {path}: {exc.strerror or exc}")

    def same_as_the_kernel_finds(self, walked: os.stat_result, missing: int) -> None:
        """Where the walk ended must be what the kernel finds at the path (its existing part)."""
        existing = Path(*self.path.parts[: len(self.path.parts) - missing]) if missing else self.path
        try:
            found = os.stat(existing)
        except OSError:
            found = None
        if found is None or (found.st_dev, found.st_ino) != (walked.st_dev, walked.st_ino):
            self.refuse("it leads elsewhere than it reads (a link in /proc), or changed while it was checked")


def _writers(path: Path, info: os.stat_result) -> set[int]:
    """Who may write to it: its owner (who may also chmod it), and a group, an ACL's entries or everyone, if its
    mode lets them."""
    writers = {info.st_uid}
    group_write = info.st_mode & stat.S_IWGRP
    if info.st_mode & stat.S_IWOTH or (group_write and (_has_acl(path) or not _own_group(info))):
        writers.add(ANYONE)
    return writers


def _has_acl(path: Path) -> bool:
    """Whether an access ACL names more than the mode shows (its group bits are then the ACL's mask)."""
    try:
        os.getxattr(path, ACL, follow_symlinks=False)
    except OSError:
        return False
    return True


def _own_group(info: os.stat_result) -> bool:
    """Whether the group is its owner's own private group (useradd's default): no other account is in it, by its
    member list or as its primary group."""
    try:
        owner = pwd.getpwuid(info.st_uid)
        members = grp.getgrgid(info.st_gid).gr_mem
    except KeyError:
        return False
    others = [entry for entry in pwd.getpwall() if entry.pw_gid == info.st_gid and entry.pw_uid != owner.pw_uid]
    return owner.pw_gid == info.st_gid and not members and not others


def _entry_changers(directory: Path, info: os.stat_result, entry: os.stat_result) -> set[int]:
    """Who can rename, remove or replace `entry` in `directory`: in a sticky one (/tmp), only the two owners."""
    if info.st_mode & stat.S_ISVTX:
        return {info.st_uid, entry.st_uid}
    return _writers(directory, info)


def check_root_input(path: Path, what: str) -> None:
    """As root: an input read as root (--token-file, --states) must be one that no other account can change."""
    owner = owner_of(path, what)
    if owner is not None:
        raise UsageError(
            f"{what}: {shown_path(path)} is {owner.name}'s; as root, give a file that only root can change"
        )


def become(account: Account, *, deadline: float, grants: frozenset[str] = frozenset()) -> None:
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
    # If the monitor itself fails: it must never fall through into the worker's path as root.
    code: int = ExitCode.MONITOR
    try:
        code = _monitor(pid, monitor_end, account, time.monotonic() + deadline, grants)
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
        os._exit(ExitCode.MONITOR)
    # A session of its own: no controlling terminal, so nothing of the account's (a module file, the init script)
    # can open root's terminal through /dev/tty and type into it. Signals reach it through the monitor.
    os.setsid()
    # Root's environment, reset as sudo's env_reset does: what a module system, the locale and a proxy need.
    kept = {name: value for name, value in os.environ.items() if is_kept(name)}
    os.environ.clear()
    os.environ.update(kept, **account.environment())
    try:
        os.chdir(account.home)
    except OSError:
        os.chdir("/")
    from provisioner import output

    output.after_fork()
    # A crash of the worker prints a traceback whose lines may quote what the account wrote: shown, not sent.
    sys.excepthook = _printable_traceback


POLL = 0.1  # seconds between the monitor's looks at the worker
STOPS_TOLERATED = 2  # an operator's Ctrl-Z and fg; a worker stopped again and again is being held by its account


def _printable_traceback(kind: type[BaseException], exc: BaseException, trace: Any) -> None:
    import traceback

    from provisioner.output import printable

    for line in "".join(traceback.format_exception(kind, exc, trace)).splitlines():
        print(printable(line), file=sys.stderr)


def _monitor(pid: int, channel: socket.socket, account: Account, deadline: float, grants: frozenset[str]) -> int:
    """Serve the worker's requests and reap it: its exit code, or 128 + the signal that ended it.

    The worker runs as the account, which may signal it: a worker stopped (SIGSTOP) is continued, and one stopped
    again and again, or that stops reading the monitor's answers, is killed, so that root (and a boot waiting for
    it) never waits forever on what the account does.
    """

    def forward(signum: int, frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for caught in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(caught, forward)
    channel.settimeout(POLL)
    pending, stops, listening = b"", 0, True
    with channel:
        while True:
            reaped, status = os.waitpid(pid, os.WNOHANG | os.WUNTRACED)
            if reaped and os.WIFSTOPPED(status):
                stops += 1
                if stops > STOPS_TOLERATED:
                    return _kill(pid, account, f"was stopped by a signal {stops} times")
                os.kill(pid, signal.SIGCONT)
                continue
            if reaped:
                code = os.waitstatus_to_exitcode(status)
                return code if code >= 0 else SIGNALS - code
            if time.monotonic() > deadline:
                return _kill(pid, account, "did not finish in the time its settings allow")
            if not listening:
                time.sleep(POLL)
                continue
            try:
                data = channel.recv(65536)
            except socket.timeout:
                continue
            if not data:
                listening = False  # the worker is exiting
                continue
            pending += data
            try:
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    channel.sendall(json.dumps(_serve(account, line, grants)).encode() + b"\n")
            except OSError:  # a timeout too: the worker asks and does not read the answers
                return _kill(pid, account, "stopped reading the answers to its requests")
            if len(pending) > REQUEST_LIMIT:
                return _kill(pid, account, "sent a request larger than any of ours")


def _kill(pid: int, account: Account, why: str) -> int:
    from provisioner.output import error

    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    error(f"jupyter-init's process running as {account.name} (pid {pid}) {why}; it was killed")
    return ExitCode.MONITOR


# The option of root's command line that grants each service beyond answering, for the message that refuses it.
GRANTED_BY = {"launch": "--launcher systemd", "sign": "--signing-key-file"}


def _serve(account: Account, line: bytes, grants: frozenset[str] = frozenset()) -> dict[str, Any]:
    """One request, whatever the worker sent: an answer or an error, never an exception out of the monitor."""
    try:
        request = json.loads(line)
        op = request.pop("op")
        service = _SERVICES[op]
    except Exception:  # the worker's bytes are data: nested too deep, not JSON, not an object, an unknown op...
        return {"error": "the monitor does not understand that request"}
    if op not in grants and op not in _SERVICES_ALWAYS:
        asked_by = GRANTED_BY.get(op, "it")
        return {"error": f"root was not asked to {op} for {account.name} (give {asked_by} on root's command line)"}
    try:
        return service(account, request)
    except Exception as exc:
        return {"error": str(exc)}
