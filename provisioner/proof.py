"""The progress page's proof: how a browser tab tells the Jupyter this run started from anything else on its port.

While the server starts, the port is free for a moment (the page lets go of it, Jupyter binds it), and after a
failure it is free for good: another local account may bind it then. The tab must not send the token there.

- Each run with a page draws a one-time value, the proof. The page hands it only to a tab that opened the address
  with the token (the researcher's own), inside the page, never in a header or a URL.
- Jupyter is started with the proof in its environment (never its command line) and with a configuration directory
  of ours first on JUPYTER_CONFIG_PATH, whose `jupyter_server_config.py` adds the proof to Jupyter's own response
  headers, keeping every header a site or the account configured (merged, not replaced), then takes both variables
  out of the server's environment again so that kernels and terminals do not inherit them.
- The tab polls without the token, and loads the address (token and all) only from an answer that carries the proof.
  An answer without it is never given the token: the tab says so and asks for a reload by hand. That is also what
  happens, safely, when a Jupyter cannot take the configuration (no `traitlets` lazy values, JUPYTER_NO_CONFIG).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from provisioner import files

HEADER = "X-Jupyter-Init-Proof"
ENV = "JUPYTER_INIT_PROOF"
CONFIG_PATH_ENV = "JUPYTER_CONFIG_PATH"
CONFIG_DIR = "jupyter-init-config"  # in the output directory
CONFIG_FILE = "jupyter_server_config.py"

# Run by the account's own Jupyter, in its own Python: nothing of ours is importable there, so it stands alone.
CONFIG = f'''"""Written by jupyter-init for the server it starts: adds the progress page's proof to Jupyter's response
headers, keeping the headers configured elsewhere. Rewritten at every run that shows the page."""
import os

_proof = os.environ.pop({ENV!r}, "")
_here = os.path.dirname(os.path.abspath(__file__))
_rest = [p for p in os.environ.get({CONFIG_PATH_ENV!r}, "").split(os.pathsep) if p and os.path.abspath(p) != _here]
if _rest:
    os.environ[{CONFIG_PATH_ENV!r}] = os.pathsep.join(_rest)
else:
    os.environ.pop({CONFIG_PATH_ENV!r}, None)

try:
    from traitlets.config.loader import LazyConfigValue
except ImportError:
    LazyConfigValue = None

if _proof and LazyConfigValue is not None:

    class _WithProof(LazyConfigValue):
        """tornado_settings as every other file made them, with the proof added to their headers."""

        earlier = None

        def get_value(self, initial):
            value = dict(initial or {{}})
            if self.earlier is not None:
                value = dict(self.earlier.get_value(value))
            headers = dict(value.get("headers") or {{}})
            headers[{HEADER!r}] = _proof
            value["headers"] = headers
            return value

        def merge_into(self, other):
            if isinstance(other, LazyConfigValue):
                self.earlier = other
                return self
            return self.get_value(other)

    c.ServerApp.tornado_settings = _WithProof()  # noqa: F821 - `c` is what Jupyter gives a configuration file
'''


def draw() -> str:
    """A new proof: as hard to guess as a token."""
    return secrets.token_urlsafe(24)


def install(out: Path) -> Path:
    """Write the configuration into the output directory; its directory, for JUPYTER_CONFIG_PATH. OSError if not."""
    directory = out.absolute() / CONFIG_DIR  # Jupyter runs in the account's home: a relative path would miss it
    try:
        directory.mkdir(mode=0o700)
    except FileExistsError:
        if directory.is_symlink() or not directory.is_dir():
            raise OSError(f"{directory} is not a directory") from None
    files.write_private(directory / CONFIG_FILE, CONFIG)
    return directory


def environment(env: Mapping[str, str], directory: Path, value: str) -> dict[str, str]:
    """`env` with the proof and our configuration directory first on Jupyter's configuration path."""
    given = env.get(CONFIG_PATH_ENV)
    return {
        **env,
        ENV: value,
        CONFIG_PATH_ENV: os.pathsep.join([str(directory), *([given] if given else [])]),
    }
