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
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from provisioner.exits import SIGNALS, ExitCode
from provisioner.values import Account

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
# What the monitor does, as root, for one of the worker's requests: the account, the request's fields -> the answer.
Service = Callable[[Account, dict[str, Any]], dict[str, Any]]


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


def act_for(account: Account | None, *, deadline: float, services: Mapping[str, Service] | None = None) -> None:
    """As root for another account: go on as that account, with root's part left in a monitor. Otherwise nothing.

    `deadline`: seconds the worker may take in all before the monitor kills it (what the account controls can make
    any step wait: a FUSE mount of its own, a definition of its own). `services`: what the monitor does for it as root,
    by request (e.g. "launch" a systemd unit): only what root's own command line asked for, handed over here.
    """
    if account is not None and os.geteuid() == 0 and account.uid != 0:
        become(account, deadline=deadline, services=services or {})


def become(account: Account, *, deadline: float, services: Mapping[str, Service]) -> None:
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
        code = _monitor(pid, monitor_end, account, time.monotonic() + deadline, services)
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


def _monitor(
    pid: int, channel: socket.socket, account: Account, deadline: float, services: Mapping[str, Service]
) -> int:
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
                    channel.sendall(json.dumps(_serve(account, line, services)).encode() + b"\n")
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


def refusal(op: str, option: str) -> Service:
    """A service root was not asked for: what its request is answered, naming the option of root's command line that
    would have granted it."""

    def refuse(account: Account, request: dict[str, Any]) -> dict[str, Any]:
        raise PermissionError(f"root was not asked to {op} for {account.name} (give {option} on root's command line)")

    return refuse


def _serve(account: Account, line: bytes, services: Mapping[str, Service]) -> dict[str, Any]:
    """One request, whatever the worker sent: an answer or an error, never an exception out of the monitor."""
    try:
        request = json.loads(line)
        op = request.pop("op")
        service = services.get(op)
    except Exception:  # the worker's bytes are data: nested too deep, not JSON, not an object, an op not a word...
        return {"error": "the monitor does not understand that request"}
    if service is None:
        return {"error": "the monitor does not understand that request"}
    try:
        return service(account, request)
    except Exception as exc:
        return {"error": str(exc)}
