"""TLS with a pinned certificate, end to end: a real Jupyter serving HTTPS, real clients, a real callback receiver."""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner import tls
from provisioner.actions.verifying import probe
from tests.conftest import REAL_JUPYTER, TOKEN, CallbackServer, cli_env, run_cli, serving, stop_servers


def fingerprint(der: bytes) -> str:
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


@pytest.fixture(scope="module")
def https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int, dict[str, str], dict[str, object]]]:
    home = tmp_path_factory.mktemp("tls") / "home"
    home.mkdir()
    with serving() as callbacks:
        env = cli_env(home, path=f"{REAL_JUPYTER.parent}:/usr/bin:/bin", JUPYTER_TOKEN=TOKEN)
        args = ["run", "--tls", "self-signed", "--module", "", "--port", "auto", "--ip", "127.0.0.1"]
        run = run_cli([*args, "--complete-url", callbacks.url("/c")], env)
        assert run.returncode == 0, run.stderr
        [completed] = callbacks.wait_for(1, "/c")
        info = json.loads((home / ".jupyter" / "jupyter_info.json").read_text())
        yield home, int(info["port"]), completed, info
        stop_servers(home)


def test_the_fingerprint_in_the_callback_is_the_served_certificates(
    https: tuple[Path, int, dict[str, str], dict[str, object]],
) -> None:
    _, port, completed, info = https
    served = served_certificate(port)
    assert completed["status"] == "init_completed"
    assert completed["fingerprint"] == fingerprint(served) == info["fingerprint"]
    assert completed["url"] == f"https://127.0.0.1:{port}/"
    assert str(info["url"]).startswith(f"https://127.0.0.1:{port}/?token=")


def test_a_client_pinning_the_certificate_gets_in_and_one_pinning_another_does_not(
    https: tuple[Path, int, dict[str, str], dict[str, object]], tmp_path: Path
) -> None:
    _, port, _, _ = https
    served = served_certificate(port)
    assert probe("127.0.0.1", port, TOKEN, pin=served) == 200
    assert probe("127.0.0.1", port, None, pin=served) == 403
    other = tls.self_signed(tmp_path, ["127.0.0.1"])
    assert other.der != served
    assert probe("127.0.0.1", port, TOKEN, pin=other.der) is None


def test_plain_http_to_the_port_gets_nothing_useful(
    https: tuple[Path, int, dict[str, str], dict[str, object]],
) -> None:
    _, port, _, _ = https
    assert probe("127.0.0.1", port, TOKEN) != 200


def test_the_key_is_the_accounts_alone(https: tuple[Path, int, dict[str, str], dict[str, object]]) -> None:
    home, _, _, _ = https
    directory = home / ".jupyter" / tls.TLS_DIR
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "key.pem").stat().st_mode) == 0o600
    assert TOKEN not in (directory / "cert.pem").read_text()


def test_certfile_and_keyfile_go_together(reap: Path, tmp_path: Path) -> None:
    run = run_cli(["run", "--certfile", str(tmp_path / "c.pem"), TOKEN], cli_env(reap))
    assert (run.returncode, run.stderr) == (2, "provisioner: error: --certfile and --keyfile go together\n")


def test_the_platforms_certificate_is_served_and_pinned(callbacks: CallbackServer, reap: Path, tmp_path: Path) -> None:
    mine = tls.self_signed(tmp_path, ["127.0.0.1"])  # as a platform's own would be, made elsewhere
    env = cli_env(reap, path=f"{REAL_JUPYTER.parent}:/usr/bin:/bin", JUPYTER_TOKEN=TOKEN)
    args = ["run", "--certfile", str(mine.certfile), "--keyfile", str(mine.keyfile), "--module", "", "--ip"]
    run = run_cli([*args, "127.0.0.1", "--port", "auto", "--complete-url", callbacks.url("/c")], env)
    assert run.returncode == 0, run.stderr
    [completed] = callbacks.wait_for(1, "/c")
    assert completed["fingerprint"] == mine.fingerprint
    port = int(completed["port"])
    assert served_certificate(port) == mine.der
