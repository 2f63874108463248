"""ready: write jupyter_info.txt for the researcher and jupyter_info.json for scripts; the server is theirs now."""

from __future__ import annotations

import json
import shlex
from datetime import datetime, timezone
from typing import Any

from provisioner import netinfo
from provisioner.context import INFO_JSON, INFO_TXT, RunContext, log
from provisioner.errors import StepFailed
from provisioner.files import write_private

REASONS = ("output_unwritable",)


def info(ctx: RunContext) -> dict[str, Any]:
    """What a researcher needs to connect. It holds the token, so its files are 0600 in a 0700 directory."""
    token = ctx.settings.token.reveal() if ctx.settings.token is not None else ""
    url = ctx.url()
    return {
        "vm_ip": ctx.vm_ip,
        "port": ctx.port,
        "token": token,
        "url": f"{url}?token={token}",
        "pid": ctx.pid,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "log": str(ctx.log_path),
        "notebook_dir": str(ctx.settings.notebook_dir or ctx.settings.home),
        "idle_timeout": ctx.settings.idle_timeout,
        "base_url": ctx.settings.base_url,
        "connect": f"open the url in a browser, or tunnel: ssh -L {ctx.port}:localhost:{ctx.port} USER@{ctx.vm_ip}",
        "stop": f"provisioner stop{_where(ctx)}   (stops the server and its kernels; or: kill {ctx.pid})",
    }


def _where(ctx: RunContext) -> str:
    return "" if ctx.settings.output_dir is None else f" --output-dir {shlex.quote(str(ctx.out))}"


def render_text(data: dict[str, Any]) -> str:
    lines = [
        "Jupyter Notebook server",
        "=======================",
        f"VM IP:     {data['vm_ip']}",
        f"Port:      {data['port']}",
        f"Token:     {data['token']}",
        f"URL:       {data['url']}",
        f"PID:       {data['pid']}",
        f"Started:   {data['started']}",
        f"Log:       {data['log']}",
        f"Notebooks: {data['notebook_dir']}",
    ]
    if data["idle_timeout"]:
        lines.append(f"Idle stop: the server shuts down after {data['idle_timeout']} s without activity")
    lines += [
        "",
        "How to connect:",
        f"  Open {data['url']} in a browser.",
        f"  If port {data['port']} is not reachable from your machine, tunnel it first:",
        f"    ssh -L {data['port']}:localhost:{data['port']} USER@{data['vm_ip']}",
        f"  and open http://localhost:{data['port']}{data['base_url']}?token=<the token above>",
        "",
        "How to stop:",
        f"  {data['stop']}",
    ]
    return "\n".join(lines) + "\n"


def run(ctx: RunContext) -> None:
    ctx.vm_ip = netinfo.vm_ipv4()
    if ctx.vm_ip is None:
        ctx.vm_ip = "127.0.0.1"
        log.warning("warning: this machine has no global IPv4 address; the info file names 127.0.0.1")
    data = info(ctx)
    try:
        write_private(ctx.out / INFO_TXT, render_text(data))
        write_private(ctx.out / INFO_JSON, json.dumps(data, indent=2) + "\n")
    except OSError as exc:
        raise StepFailed(
            "output_unwritable", f"cannot write the connection info in {ctx.out}: {exc.strerror or exc}"
        ) from None
    ctx.handed_over = True
