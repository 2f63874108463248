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
        "connect": f"open the url in a browser, or tunnel: ssh -L {ctx.port}:localhost:{ctx.port} USER@{ctx.vm_ip}",
        "stop": f"provisioner stop{_where(ctx)}   (stops the server and its kernels; or: kill {ctx.pid})",
    }


def _where(ctx: RunContext) -> str:
    return "" if ctx.settings.output_dir is None else f" --output-dir {shlex.quote(str(ctx.out))}"


def render_text(data: dict[str, Any]) -> str:
    return (
        "Jupyter Notebook server\n"
        "=======================\n"
        f"VM IP:     {data['vm_ip']}\n"
        f"Port:      {data['port']}\n"
        f"Token:     {data['token']}\n"
        f"URL:       {data['url']}\n"
        f"PID:       {data['pid']}\n"
        f"Started:   {data['started']}\n"
        f"Log:       {data['log']}\n"
        "\n"
        "How to connect:\n"
        f"  Open {data['url']} in a browser.\n"
        f"  If port {data['port']} is not reachable from your machine, tunnel it first:\n"
        f"    ssh -L {data['port']}:localhost:{data['port']} USER@{data['vm_ip']}\n"
        f"  and open http://localhost:{data['port']}/?token=<the token above>\n"
        "\n"
        "How to stop:\n"
        f"  {data['stop']}\n"
    )


def run(ctx: RunContext) -> None:
    ctx.vm_ip = netinfo.vm_ipv4()
    if ctx.vm_ip is None:
        ctx.vm_ip = "127.0.0.1"
        log.warning("warning: this machine has no global IPv4 address; the info file names 127.0.0.1")
    data = info(ctx)
    try:
        write_private(ctx.out / INFO_TXT, render_text(data), ctx.settings.owner)
        write_private(ctx.out / INFO_JSON, json.dumps(data, indent=2) + "\n", ctx.settings.owner)
    except OSError as exc:
        raise StepFailed(
            "output_unwritable", f"cannot write the connection info in {ctx.out}: {exc.strerror or exc}"
        ) from None
    ctx.handed_over = True
