"""`jupyter-init stop`: stop the recorded server with its kernels, wait for its port to be free, and record that.

As root on a directory another account owns, it runs as that account: it can signal only their processes, and only
the one that is the recorded server (its uid, start time and program).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time
from pathlib import Path

from provisioner import netinfo, server
from provisioner.commands.common import READ_DEADLINE, act_as_owner, add_output_dir, locked_store, output_dir
from provisioner.journal import Journal
from provisioner.values import ascii_text


def stop(out: Path, grace: float) -> int:
    started = time.monotonic()
    act_as_owner(out, 2 * grace + READ_DEADLINE)
    store = locked_store(out)
    if store is None:
        print(f"no server is recorded in {out}; nothing to stop")
        return 0
    try:
        record = store.load()
        recorded = record.server if record is not None else None
        if record is None or recorded is None:
            print(f"no server is recorded in {out}; nothing to stop")
            return 0
        pid, port = recorded.pid, recorded.port
        if not server.stop(pid, grace=grace, unit=recorded.unit, start_time=recorded.start_time, exe=recorded.exe):
            print(f"the recorded server (pid {pid}) is not running; nothing to stop")
            return 0
        ip = str(record.settings.get("ip", "0.0.0.0"))  # noqa: S104 - Jupyter's own default
        deadline = time.monotonic() + grace
        with contextlib.suppress(OSError):  # a recorded address not of this machine: nothing to wait for
            while port is not None and not netinfo.port_free(ip, port) and time.monotonic() < deadline:
                time.sleep(0.05)
        store.save_endpoints(record.settings, only=False)  # a schema 1 record held them whole: written masked now
        Journal(store, record).stopped(started)
        print(f"stopped the server (pid {pid}); port {port} is free")
        return 0
    finally:
        store.unlock()


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Stop the recorded server: SIGTERM to its process group (its kernels too), SIGKILL after the grace time; wait "
        "until its port is free, and record it. The record keeps everything else, so that `resume` can start the "
        "server again."
    )
    add_output_dir(parser)
    parser.add_argument("--grace", type=_grace, default=10.0, metavar="S", help="seconds before SIGKILL (default 10)")


def _grace(text: str) -> float:
    """--grace: seconds, from 0 to an hour (argparse's float would take nan, inf and -1)."""
    try:
        seconds = float(ascii_text(text))
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 0 to 3600")
    return seconds


def main(args: argparse.Namespace, started: float) -> int:
    return stop(output_dir(args.output_dir, None), args.grace)
