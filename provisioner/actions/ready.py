"""ready: write jupyter_info.txt for the researcher and jupyter_info.json for scripts; the server is theirs now."""

from __future__ import annotations

import ipaddress
import json
import shlex
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from provisioner import netinfo
from provisioner.context import INFO_JSON, INFO_TXT, RunContext
from provisioner.errors import StepFailed
from provisioner.files import write_private
from provisioner.output import log

REASONS = ("output_unwritable",)


def info(ctx: RunContext) -> dict[str, Any]:
    """What a researcher needs to connect. It holds the token, so its files are 0600 in a 0700 directory."""
    token = ctx.settings.token.reveal() if ctx.settings.token is not None else ""
    url = ctx.url()
    tunnel = _tunnel(ctx)
    if _loopback(ctx.settings.ip):
        connect = f"the server listens on the VM's loopback address only: tunnel first, {tunnel}, then open the url"
    else:
        connect = f"open the url in a browser, or tunnel: {tunnel}"
    return {
        "vm_ip": _vm_ip(ctx),
        "ip": ctx.settings.ip,
        "port": ctx.port,
        "token": token,
        "url": f"{url}?token={token}",
        "fingerprint": ctx.certificate.fingerprint if ctx.certificate is not None else None,
        "app": ctx.settings.app,
        "pid": ctx.pid,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "log": str(ctx.log_path),
        "notebook_dir": str(ctx.settings.notebook_dir or ctx.settings.home),
        "idle_timeout": ctx.settings.idle_timeout,
        "base_url": ctx.settings.base_url,
        "connect": connect,
        "tunnel": tunnel,
        "stop": f"jupyter-init stop{_where(ctx)}   (stops the server and its kernels; or: kill {ctx.pid})",
    }


def _vm_ip(ctx: RunContext) -> str:
    return ctx.vm_ip or netinfo.local_host(ctx.settings.ip)


def _loopback(ip: str) -> bool:
    return ipaddress.ip_address(ip).is_loopback


def _tunnel(ctx: RunContext) -> str:
    """The ssh command that brings the server's port to the researcher's machine.

    Its far end is the address the server listens on (loopback for a wildcard), not `localhost`: a server bound to
    one address refuses every other, and `localhost` names 127.0.0.1 and ::1 alike."""
    target = netinfo.url_host(netinfo.local_host(ctx.settings.ip))
    return f"ssh -L {ctx.port}:{target}:{ctx.port} USER@{_vm_ip(ctx)}"


def _where(ctx: RunContext) -> str:
    return "" if ctx.settings.output_dir is None else f" --output-dir {shlex.quote(str(ctx.out))}"


def render_text(data: dict[str, Any]) -> str:
    title = {"lab": "JupyterLab server"}.get(data.get("app", ""), "Jupyter Notebook server")
    scheme = urlsplit(data["url"]).scheme  # https when the server shows a certificate
    lines = [
        title,
        "=" * len(title),
        f"VM IP:     {data['vm_ip']}",
        f"Port:      {data['port']}",
        f"Token:     {data['token']}",
        f"URL:       {data['url']}",
        f"PID:       {data['pid']}",
        f"Started:   {data['started']}",
        f"Log:       {data['log']}",
        f"Notebooks: {data['notebook_dir']}",
    ]
    if data.get("fingerprint"):
        lines.append(f"TLS:       certificate SHA-256 {data['fingerprint']}")
    if data["idle_timeout"]:
        lines.append(f"Idle stop: the server shuts down after {data['idle_timeout']} s without activity")
    if _loopback(data["ip"]):
        how = [f"  The server listens on the VM's loopback address only: tunnel port {data['port']} first:"]
    else:
        how = [
            f"  Open {data['url']} in a browser.",
            f"  If port {data['port']} is not reachable from your machine, tunnel it first:",
        ]
    lines += [
        "",
        "How to connect:",
        *how,
        f"    {data['tunnel']}",
        f"  and open {scheme}://localhost:{data['port']}{data['base_url']}?token=<the token above>",
        "",
        "How to stop:",
        f"  {data['stop']}",
    ]
    return "\n".join(lines) + "\n"


def run(ctx: RunContext) -> None:
    if ctx.vm_ip is None:
        log.warning(
            "warning: this machine has no global address to reach %s by; the info file names %s",
            ctx.settings.ip,
            _vm_ip(ctx),
        )
    data = info(ctx)
    try:
        write_private(ctx.out / INFO_TXT, render_text(data))
        write_private(ctx.out / INFO_JSON, json.dumps(data, indent=2) + "\n")
    except OSError as exc:
        raise StepFailed(
            "output_unwritable", f"cannot write the connection info in {ctx.out}: {exc.strerror or exc}"
        ) from None
    ctx.handed_over = True
