"""The server's certificate: the platform's own (--certfile, --keyfile) or one made for this VM (--tls self-signed),
and the pin that the readiness check and the platform hold it to: its SHA-256 fingerprint.

A self-signed certificate is made by the system's `openssl`, never by code of ours: a fresh P-256 key, 0600 and the
account's, in a 0700 directory; the VM's host name and addresses as subject alternative names. Each is made under
names of its own and never overwritten: Jupyter reads its files again for every connection, so a file rewritten
under a live server would change the certificate it shows, and the fingerprint the platform pinned would be wrong.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from provisioner import files, netinfo
from provisioner.output import log
from provisioner.settings import Settings

if TYPE_CHECKING:
    import ssl  # imported where it is used: 8 ms at start-up that a run without TLS does not need

TLS_DIR = "provisioner-tls"
KEY_SUFFIX, CERT_SUFFIX = "-key.pem", "-cert.pem"
OPENSSL_TIMEOUT = 30.0
DAYS = 825  # the longest validity browsers accept for a certificate they are told to trust


class TLSError(Exception):
    """The certificate cannot be used or made; the message says why, in one line."""


@dataclass(frozen=True)
class Certificate:
    certfile: Path
    keyfile: Path
    fingerprint: str  # SHA-256 of the certificate, as browsers and `openssl x509 -fingerprint -sha256` show it


def fingerprint(der: bytes) -> str:
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def load(certfile: Path, keyfile: Path) -> Certificate:
    """The first certificate of a PEM file (a chain's leaf), checked to go with `keyfile`, a key without a passphrase
    (nothing can type one at boot)."""
    try:
        text = files.read_regular(certfile, follow=True).decode("ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise TLSError(f"cannot read the certificate {certfile}: {getattr(exc, 'strerror', None) or exc}") from None
    import ssl

    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    first = re.search(r"-----BEGIN ([^-\n]{1,64})-----", text)
    if first is not None and first[1] != "CERTIFICATE":
        # OpenSSL serves the first block (a TRUSTED CERTIFICATE too): pinning a later one would pin another.
        raise TLSError(f"{certfile}: its first PEM block is a {first[1]}, not a CERTIFICATE; put the server's first")
    start = text.find(begin)
    stop = text.find(end, start)
    if start < 0 or stop < 0:
        raise TLSError(f"{certfile} holds no PEM certificate")
    try:
        der = ssl.PEM_cert_to_DER_cert(text[start : stop + len(end)])
    except ValueError:
        raise TLSError(f"{certfile} holds no PEM certificate") from None
    check_validity(certfile, der, datetime.now(timezone.utc))
    certificate = Certificate(certfile, keyfile, fingerprint(der))
    server_context(certificate)  # the key goes with it, and can be used without a passphrase
    return certificate


def check_validity(certfile: Path, der: bytes, now: datetime) -> None:
    """An expired certificate is refused: every browser refuses it, and the platform would pin a dead one. One not
    valid yet is served with a warning: a VM's clock can be behind at boot, before it has synchronised."""
    not_before, not_after = validity(der)
    if now > not_after:
        raise TLSError(f"{certfile}: the certificate expired on {not_after:%Y-%m-%d %H:%M} UTC; give a current one")
    if now < not_before:
        log.warning(
            "warning: %s is valid only from %s UTC and this VM's clock says %s UTC: browsers refuse it until then",
            certfile,
            f"{not_before:%Y-%m-%d %H:%M}",
            f"{now:%Y-%m-%d %H:%M}",
        )


def validity(der: bytes) -> tuple[datetime, datetime]:
    """A DER certificate's notBefore and notAfter (RFC 5280, 4.1.2.5), read without a library of certificates: the
    certificate's first child is the signed part, whose fields are an optional [0] version, the serial number, the
    signature's algorithm, the issuer and then the validity."""
    try:
        _, body, _ = _element(der, 0)
        _, fields, _ = _element(der, body)  # tbsCertificate
        tag, _, stop = _element(der, fields)
        if tag == 0xA0:  # the version: the serial number is next
            _, _, stop = _element(der, stop)
        for _ in range(2):  # the signature's algorithm, the issuer
            _, _, stop = _element(der, stop)
        _, times, _ = _element(der, stop)  # the validity
        tag_before, start, stop = _element(der, times)
        not_before = _time(tag_before, der[start:stop])
        tag_after, start, stop = _element(der, stop)
        return not_before, _time(tag_after, der[start:stop])
    except (IndexError, ValueError):
        raise TLSError("the certificate's validity cannot be read: it is not an X.509 certificate") from None


def _element(der: bytes, offset: int) -> tuple[int, int, int]:
    """The DER element at `offset`: its tag, and where its content starts and ends."""
    tag, length = der[offset], der[offset + 1]
    start = offset + 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(der[start : start + count], "big")
        start += count
    if start + length > len(der):
        raise ValueError("truncated")
    return tag, start, start + length


def _time(tag: int, value: bytes) -> datetime:
    text = value.decode("ascii")
    if tag == 0x17:  # UTCTime, YYMMDDHHMMSSZ: years 50-99 are 19xx
        text = ("19" if int(text[:2]) >= 50 else "20") + text
    elif tag != 0x18:  # GeneralizedTime, YYYYMMDDHHMMSSZ
        raise ValueError("not a time")
    return datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=timezone.utc)


def server_context(certificate: Certificate) -> ssl.SSLContext:
    """A TLS server context showing `certificate`. Its files are opened as regular files only (a FIFO planted as
    the key would block the run for good) and then read by OpenSSL through the descriptors we checked."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    opened: list[int] = []
    try:
        for path in (certificate.certfile, certificate.keyfile):
            opened.append(files.open_regular(path, os.O_RDONLY, follow=True))
        # The empty passphrase makes an encrypted key fail here at once, instead of OpenSSL asking a terminal for one.
        cert_fd, key_fd = opened
        context.load_cert_chain(f"/proc/self/fd/{cert_fd}", f"/proc/self/fd/{key_fd}", password=lambda: b"")
    except ssl.SSLError:
        why = "it is not the certificate's key, or has a passphrase"
        raise TLSError(f"cannot use the key {certificate.keyfile}: {why}") from None
    except OSError as exc:
        raise TLSError(f"cannot use {exc.filename or certificate.keyfile}: {exc.strerror or exc}") from None
    finally:
        for fd in opened:
            os.close(fd)
    return context


def self_signed(out: Path, addresses: list[str]) -> Certificate:
    """A key and a certificate for this VM in `out`/provisioner-tls under new names, made by openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise TLSError("--tls self-signed needs the system's openssl, which is not installed")
    directory = out / TLS_DIR
    try:
        directory.mkdir(mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
    except OSError as exc:
        raise TLSError(f"cannot make {directory}: {exc.strerror or exc}") from None
    name = f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"
    keyfile, certfile = directory / f"{name}{KEY_SUFFIX}", directory / f"{name}{CERT_SUFFIX}"
    host = socket.gethostname()
    names = [f"DNS:{host}", "DNS:localhost"] + [f"IP:{ipaddress.ip_address(address)}" for address in addresses]
    command = [
        openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        # A common name holds 64 characters at most; the names that count are the alternative ones.
        "-days", str(DAYS), "-subj", f"/CN={host[:64]}", "-addext", f"subjectAltName={','.join(dict.fromkeys(names))}",
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


def forget_others(out: Path, kept: Certificate) -> None:
    """Remove the self-signed certificates and keys made before `kept`: no server that runs now uses them (a run
    starts one only once the recorded one is stopped)."""
    directory = out / TLS_DIR
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            made_here = entry.name.endswith((KEY_SUFFIX, CERT_SUFFIX))
            if made_here and directory / entry.name not in (kept.certfile, kept.keyfile):
                with contextlib.suppress(OSError):
                    os.unlink(directory / entry.name)


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


def pinned(sock: socket.socket, host: str, pin: str, timeout: float) -> ssl.SSLSocket | None:
    """`sock` over TLS if the server shows exactly the certificate whose fingerprint is `pin`; None (and closed)
    otherwise.

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
    shown = wrapped.getpeercert(binary_form=True)
    if shown is None or fingerprint(shown) != pin:
        wrapped.close()
        return None
    return wrapped
