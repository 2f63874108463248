"""What the tests share of this machine and this checkout: paths, the test token, a clean PATH."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REAL_JUPYTER = Path(sys.executable).with_name("jupyter-notebook")


CHECKOUT = Path(__file__).resolve().parents[2]


LMOD_CMD = Path("/usr/share/lmod/lmod/libexec/lmod")


PREREQUISITES = "scripts/install-test-prerequisites.sh"  # run as root: what the tests need from Debian


# Debian's environment-modules conflicts with lmod, so its package is unpacked here rather than installed
# (PREREQUISITES does it). Its modulecmd.tcl runs with the system's tclsh like an installed one.
ENVIRONMENT_MODULES = Path("/opt/environment-modules")


TOKEN = "tok-" + "5e3c7a1f9b" * 4  # distinctive, so a leak anywhere is easy to find


SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# Where a root run with the systemd launcher writes its boot unit (provisioner.boot): never this machine's own
# /etc/systemd/system, whatever a test forgets to say. A test that looks at the unit gives its own.
UNIT_SANDBOX = Path(tempfile.mkdtemp(prefix="jupyter-init-units-"))


MODULE_SECONDS = "SLOW_MODULE_SECONDS"  # how long the Slow modules take to load, from the run's environment


SCRIPT = CHECKOUT / "scripts" / "jupyter_init.sh"
