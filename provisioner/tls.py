"""The server's certificate: the platform's own (--certfile, --keyfile) or one made for this VM (--tls self-signed),
and the pin that the readiness check and the platform hold it to: its SHA-256 fingerprint.

A self-signed certificate is made by the system's `openssl`, never by code of ours: a fresh P-256 key, 0600 and the
account's, in a 0700 directory; the VM's host name and addresses as subject alternative names.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from provisioner import files, netinfo
from provisioner.settings import Settings

if TYPE_CHECKING:
    import ssl  # imported where it is used: 8 ms at start-up that a run without TLS does not need

TLS_DIR = "provisioner-tls"
OPENSSL_TIMEOUT = 30.0
DAYS = 825  # the longest validity browsers accept for a certificate they are told to trust


class TLSError(Exception):
    """The certificate cannot be used or made; the message says why, in one line."""


@dataclass(frozen=True)
class Certificate:
    certfile: Path
    keyfile: Path
    der: bytes

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate, as browsers and `openssl x509 -fingerprint -sha256` show it."""
        digest = hashlib.sha256(self.der).hexdigest().upper()
        return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def load(certfile: Path, keyfile: Path) -> Certificate:
    """The first certificate of a PEM file (a chain's leaf), read as data."""
    try:
        text = files.read_regular(certfile, follow=True).decode("ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise TLSError(f"cannot read the certificate {certfile}: {getattr(exc, 'strerror', None) or exc}") from None
    import ssl

    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    start = text.find(begin)
    stop = text.find(end, start)
    if start < 0 or stop < 0:
        raise TLSError(f"{certfile} holds no PEM certificate")
    try:
        der = ssl.PEM_cert_to_DER_cert(text[start : stop + len(end)])
    except ValueError:
        raise TLSError(f"{certfile} holds no PEM certificate") from None
    return Certificate(certfile, keyfile, der)


def self_signed(out: Path, addresses: list[str]) -> Certificate:
    """A key and a certificate for this VM in `out`/provisioner-tls, made by openssl; made again on every run."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise TLSError("--tls self-signed needs the system's openssl, which is not installed")
    directory = out / TLS_DIR
    try:
        directory.mkdir(mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
    except OSError as exc:
        raise TLSError(f"cannot make {directory}: {exc.strerror or exc}") from None
    keyfile, certfile = directory / "key.pem", directory / "cert.pem"
    host = socket.gethostname()
    names = [f"DNS:{host}", "DNS:localhost"] + [f"IP:{ipaddress.ip_address(address)}" for address in addresses]
    for stale in (keyfile, certfile):
        stale.unlink(missing_ok=True)
    command = [
        openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-days", str(DAYS), "-subj", f"/CN={host}", "-addext", f"subjectAltName={','.join(dict.fromkeys(names))}",
        "-keyout", str(keyfile), "-out", str(certfile),
    ]  # fmt: skip
    old_umask = os.umask(0o077)  # the key is 0600 from its first byte
    try:
        made = subprocess.run(
            command, capture_output=True, text=True, timeout=OPENSSL_TIMEOUT, check=False, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TLSError(f"openssl could not make a certificate: {exc}") from None
    finally:
        os.umask(old_umask)
    if made.returncode != 0:
        raise TLSError(f"openssl could not make a certificate: {' '.join(made.stderr.split())[:200]}")
    return load(certfile, keyfile)


def of_run(settings: Settings, vm_ip: str | None) -> Certificate | None:
    """The certificate a run's settings ask for (None: plain HTTP): made for this VM, or the platform's."""
    if settings.tls == "self-signed":
        addresses = [address for address in (vm_ip, netinfo.local_host(settings.ip)) if address]
        if not ipaddress.ip_address(settings.ip).is_unspecified:
            addresses.append(settings.ip)
        return self_signed(settings.out, addresses)
    if settings.certfile is not None and settings.keyfile is not None:
        return load(settings.certfile, settings.keyfile)
    return None


def pinned(sock: socket.socket, host: str, der: bytes, timeout: float) -> ssl.SSLSocket | None:
    """`sock` over TLS if the server shows exactly the certificate `der`; None (and closed) otherwise.

    Not "verify off": the chain and the name are not what is trusted here, the one certificate is. A server that
    shows any other, however well signed, gets nothing from us, least of all the token.
    """
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # replaced by the comparison below, which is stricter than a chain
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        sock.settimeout(timeout)
        wrapped = context.wrap_socket(sock, server_hostname=host)
    except (OSError, ssl.SSLError):
        sock.close()
        return None
    if wrapped.getpeercert(binary_form=True) != der:
        wrapped.close()
        return None
    return wrapped
