"""`jupyter-init stop`: stop the recorded server with its kernels, wait for its port to be free, and record that.

As root on a directory another account owns, it runs as that account: it can signal only their processes, and only
the one that is the recorded server (its uid, start time and program).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from provisioner import netinfo, server
from provisioner.commands.common import READ_DEADLINE, act_as_owner, locked_store
from provisioner.journal import Journal


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
