"""What one run knows as it goes: the settings, and what each action found or made for the next."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from provisioner import netinfo, proof
from provisioner.secret import TOKEN_ENV
from provisioner.settings import Settings
from provisioner.tls import Certificate

if TYPE_CHECKING:
    from provisioner.boot import Boot
    from provisioner.page import ProgressPage  # imported only by a run that shows it

LOG_NAME = "jupyter.log"
INFO_TXT = "jupyter_info.txt"
INFO_JSON = "jupyter_info.json"


@dataclass
class RunContext:
    """Mutable per-run state handed to every action; settings stay frozen inside it."""

    settings: Settings
    # The environment the server will start with: ours, without the token, plus what loading added.
    env: dict[str, str] = field(default_factory=dict)
    jupyter: Path | None = None
    port: int | None = None
    process: subprocess.Popen[bytes] | None = None
    pid: int | None = None
    pid_start: int | None = None  # the server's start time, to tell it from a process that reuses its PID
    pid_exe: str | None = None  # the program it runs once it answers, to tell it from another process of ours
    unit: str | None = None  # the systemd unit running the server, with --launcher systemd
    server_started: float | None = None  # time.monotonic() when the server was launched
    # netinfo.vm_address, found as the run begins, not in ready: an adopting run reports its URL before ready runs.
    vm_ip: str | None = None
    # True once the server belongs to the user (ready): from then on nothing we do may stop it.
    handed_over: bool = False
    certificate: Certificate | None = None  # with TLS: the one the server shows, and the pin it is checked with
    page: ProgressPage | None = None  # --progress-page, while it holds the port
    proof_config: Path | None = None  # with the page: the configuration that makes Jupyter show its proof
    unrecordable: str | None = None  # why the run cannot be recorded: validating fails it before any server starts
    boot: Boot | None = None  # run by the boot unit after a reboot: its callbacks say which boot
    # Saves the record now, returning why it could not be saved: the journal's, once the run has one.
    record: Callable[[], str | None] = field(default=lambda: None, repr=False)

    def __post_init__(self) -> None:
        if self.vm_ip is None:
            self.vm_ip = netinfo.vm_address(self.settings.ip)

    @property
    def out(self) -> Path:
        return self.settings.out

    @property
    def log_path(self) -> Path:
        return self.out / LOG_NAME

    @property
    def scheme(self) -> str:
        """What the server speaks: https with the certificate it was started with (or an adopted one's), else http."""
        return "https" if self.certificate is not None else "http"

    def url(self) -> str:
        """The server's URL without the token: one that reaches it (netinfo.server_url)."""
        return netinfo.server_url(self.settings.ip, self.port, self.settings.base_url, self.vm_ip, self.scheme)

    @property
    def server_runs_as_root(self) -> bool:
        """Still root when starting the server (no --user): Jupyter needs --allow-root, and a warning is due.

        With --user, root's part stayed in the monitor (privsep): by now we are the user."""
        return os.geteuid() == 0

    def server_env(self) -> dict[str, str]:
        """The server's environment: the token travels here, never on its command line."""
        env = dict(self.env)
        if self.settings.token is not None:
            env[TOKEN_ENV] = self.settings.token.reveal()
        if self.page is not None and self.proof_config is not None:
            env = proof.environment(env, self.proof_config, self.page.tab.proof)
        return env
