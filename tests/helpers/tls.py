"""Certificates made for the tests (any validity), and what a server shows: its certificate and fingerprint."""

from __future__ import annotations

import hashlib
import socket
import ssl
from datetime import datetime
from pathlib import Path


def made_certificate(directory: Path, not_before: datetime, not_after: datetime) -> tuple[Path, Path]:
    """A certificate with the validity asked for, by the `cryptography` library (openssl 3.0 cannot back-date)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vm.example")])
    certificate = (
        x509.CertificateBuilder(subject_name=name, issuer_name=name, public_key=key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / f"{not_before:%Y%m%d}-cert.pem", directory / f"{not_before:%Y%m%d}-key.pem"
    certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return certfile, keyfile


def fingerprint(der: bytes) -> str:
    """Worked out here, not by the code under test: `openssl x509 -fingerprint -sha256` shows the same."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def served_certificate(port: int) -> bytes:
    """What the server shows to anyone who connects, read without trusting it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock, context.wrap_socket(sock) as wrapped:
        der = wrapped.getpeercert(binary_form=True)
    assert der is not None
    return der
