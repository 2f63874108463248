"""TLS with a pinned certificate, end to end: a real Jupyter serving HTTPS, real clients, a real callback receiver."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from provisioner import tls
from provisioner.probe import probe
from tests.helpers.cli import cli_env, jupyter_pids, read_state, run_cli, start_cli, stop_servers
from tests.helpers.constants import REAL_JUPYTER, SYSTEM_PATH, TOKEN
from tests.helpers.net import free_port
from tests.helpers.receiver import CallbackServer, serving
from tests.helpers.tls import fingerprint, made_certificate, served_certificate

HTTPS_ARGS = ["run", "--tls", "self-signed", "--module", "", "--port", "auto", "--ip", "127.0.0.1"]


def https_env(home: Path) -> dict[str, str]:
    return cli_env(home, path=f"{REAL_JUPYTER.parent}:/usr/bin:/bin", JUPYTER_TOKEN=TOKEN)


@pytest.fixture(scope="module")
def https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int, dict[str, str], dict[str, object]]]:
    home = tmp_path_factory.mktemp("tls") / "home"
    home.mkdir()
    with serving() as callbacks:
        run = run_cli([*HTTPS_ARGS, "--complete-url", callbacks.url("/c")], https_env(home))
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
    assert probe("127.0.0.1", port, TOKEN, pin=fingerprint(served)) == 200
    assert probe("127.0.0.1", port, None, pin=fingerprint(served)) == 403
    other = tls.self_signed(tmp_path, ["127.0.0.1"])
    assert other.fingerprint != fingerprint(served)
    assert probe("127.0.0.1", port, TOKEN, pin=other.fingerprint) is None


def test_plain_http_to_the_port_gets_nothing_useful(
    https: tuple[Path, int, dict[str, str], dict[str, object]],
) -> None:
    _, port, _, _ = https
    assert served_certificate(port)  # it listens, over TLS
    assert probe("127.0.0.1", port, TOKEN) is None  # plain HTTP: no status at all, the connection is closed


def test_the_key_is_the_accounts_alone(https: tuple[Path, int, dict[str, str], dict[str, object]]) -> None:
    home, _, _, _ = https
    directory = home / ".jupyter" / tls.TLS_DIR
    recorded = read_state(home)["server"]
    keyfile, certfile = Path(recorded["keyfile"]), Path(recorded["certfile"])
    assert (keyfile.parent, certfile.parent) == (directory, directory)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    assert keyfile.stat().st_uid == os.getuid()  # the run's account (privsep's tests run it as another)
    assert "PRIVATE KEY" in keyfile.read_text()


def test_the_certificate_names_the_vm(https: tuple[Path, int, dict[str, str], dict[str, object]]) -> None:
    home, _, _, _ = https
    certfile = read_state(home)["server"]["certfile"]
    names = subprocess.run(
        ["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", certfile],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert f"DNS:{socket.gethostname()}" in names
    assert "DNS:localhost" in names
    assert "IP Address:127.0.0.1" in names


def test_the_info_file_says_https_and_the_fingerprint(
    https: tuple[Path, int, dict[str, str], dict[str, object]],
) -> None:
    home, port, completed, _ = https
    text = (home / ".jupyter" / "jupyter_info.txt").read_text()
    assert f"TLS:       certificate SHA-256 {completed['fingerprint']}" in text
    assert f"URL:       https://127.0.0.1:{port}/?token={TOKEN}" in text
    assert f"and open https://localhost:{port}/?token=" in text
    assert "http://" not in text


def test_a_run_again_adopts_the_server_and_pins_its_certificate(
    https: tuple[Path, int, dict[str, str], dict[str, object]],
) -> None:
    home, port, completed, _ = https
    with serving() as callbacks:
        again = run_cli([*HTTPS_ARGS, "--complete-url", callbacks.url("/c")], https_env(home))
        assert again.returncode == 0, again.stderr
        assert "adopting it" in again.stderr
        [adopted] = callbacks.wait_for(1, "/c")
    assert (adopted["status"], adopted["url"]) == ("init_completed", completed["url"])
    assert adopted["fingerprint"] == completed["fingerprint"] == fingerprint(served_certificate(port))


def test_a_failing_run_beside_the_server_leaves_its_certificate_alone(
    https: tuple[Path, int, dict[str, str], dict[str, object]],
) -> None:
    """Jupyter reads its certificate's files for every connection: one rewritten under it would change what it
    shows, and the platform's pin would no longer match."""
    home, port, completed, _ = https
    args = [*HTTPS_ARGS[:-4], "--ip", "127.0.0.1", "--port", str(free_port()), "--progress-page"]
    failing = run_cli(args, https_env(home) | {"JUPYTER_TOKEN": "not a usable token"})
    assert failing.returncode == 10, failing.stderr
    assert fingerprint(served_certificate(port)) == completed["fingerprint"]
    assert tls.load(Path(read_state(home)["server"]["certfile"]), Path(read_state(home)["server"]["keyfile"]))


def test_certfile_and_keyfile_go_together(reap: Path, tmp_path: Path) -> None:
    mine = tls.self_signed(tmp_path, ["127.0.0.1"])
    run = run_cli(["run", "--certfile", str(mine.certfile)], cli_env(reap, JUPYTER_TOKEN=TOKEN))
    assert (run.returncode, run.stderr) == (2, "jupyter-init: error: --certfile and --keyfile go together\n")


def test_the_platforms_certificate_is_served_and_pinned(callbacks: CallbackServer, reap: Path, tmp_path: Path) -> None:
    mine = tls.self_signed(tmp_path, ["127.0.0.1"])  # as a platform's own would be, made elsewhere
    env = cli_env(reap, path=f"{REAL_JUPYTER.parent}:/usr/bin:/bin", JUPYTER_TOKEN=TOKEN)
    args = ["run", "--certfile", str(mine.certfile), "--keyfile", str(mine.keyfile), "--module", "", "--ip"]
    run = run_cli([*args, "127.0.0.1", "--port", "auto", "--complete-url", callbacks.url("/c")], env)
    assert run.returncode == 0, run.stderr
    [completed] = callbacks.wait_for(1, "/c")
    assert completed["fingerprint"] == mine.fingerprint
    port = int(completed["port"])
    assert fingerprint(served_certificate(port)) == mine.fingerprint


def test_a_run_asking_for_tls_replaces_a_plain_server_rather_than_call_it_https(
    callbacks: CallbackServer, reap: Path
) -> None:
    plain = run_cli([*HTTPS_ARGS[:1], *HTTPS_ARGS[3:]], https_env(reap))
    assert plain.returncode == 0, plain.stderr
    run = run_cli([*HTTPS_ARGS, "--complete-url", callbacks.url("/c")], https_env(reap))
    assert run.returncode == 0, run.stderr
    assert "another tls" in run.stderr
    [completed] = callbacks.wait_for(1, "/c")
    port = int(completed["port"])
    assert completed["url"] == f"https://127.0.0.1:{port}/"
    assert completed["fingerprint"] == fingerprint(served_certificate(port))


def test_a_renewed_platform_certificate_gets_a_new_server_that_shows_it(
    callbacks: CallbackServer, reap: Path, tmp_path: Path
) -> None:
    mine = tls.self_signed(tmp_path, ["127.0.0.1"])
    certfile, keyfile = tmp_path / "vm.crt", tmp_path / "vm.key"
    certfile.write_bytes(mine.certfile.read_bytes())
    keyfile.write_bytes(mine.keyfile.read_bytes())
    args = ["run", "--certfile", str(certfile), "--keyfile", str(keyfile), "--module", "", "--ip", "127.0.0.1"]
    first = run_cli([*args, "--port", "auto"], https_env(reap))
    assert first.returncode == 0, first.stderr
    renewed = tls.self_signed(tmp_path, ["127.0.0.1"])  # the platform puts a new one in the same place
    certfile.write_bytes(renewed.certfile.read_bytes())
    keyfile.write_bytes(renewed.keyfile.read_bytes())
    again = run_cli([*args, "--port", "auto", "--complete-url", callbacks.url("/c")], https_env(reap))
    assert again.returncode == 0, again.stderr
    assert "another certificate in --certfile" in again.stderr
    [completed] = callbacks.wait_for(1, "/c")
    assert completed["fingerprint"] == renewed.fingerprint == fingerprint(served_certificate(int(completed["port"])))


def test_a_key_with_a_passphrase_or_of_another_certificate_is_one_line(tmp_path: Path) -> None:
    mine = tls.self_signed(tmp_path, ["127.0.0.1"])
    other = tls.self_signed(tmp_path, ["127.0.0.1"])
    with pytest.raises(tls.TLSError, match="is not the certificate's key, or has a passphrase"):
        tls.load(mine.certfile, other.keyfile)
    locked = tmp_path / "locked.key"
    subprocess.run(
        ["openssl", "pkey", "-in", str(mine.keyfile), "-out", str(locked), "-aes256", "-passout", "pass:secret"],
        check=True, capture_output=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    with pytest.raises(tls.TLSError, match="is not the certificate's key, or has a passphrase"):
        tls.load(mine.certfile, locked)


def test_a_run_killed_while_verifying_resumes_pinning_the_recorded_certificate(
    callbacks: CallbackServer, reap: Path
) -> None:
    process = start_cli([*HTTPS_ARGS, "--complete-url", callbacks.url("/c")], https_env(reap))
    deadline = time.monotonic() + 60
    while read_state(reap).get("state") != "verifying" and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    [pid] = jupyter_pids(reap)
    recorded = read_state(reap)["server"]
    assert recorded["pid"] == pid and recorded["fingerprint"]
    resumed = run_cli(["resume"], cli_env(reap, path=f"{REAL_JUPYTER.parent}:/usr/bin:/bin"))
    assert resumed.returncode == 0, resumed.stderr
    assert jupyter_pids(reap) == [pid]  # adopted, over HTTPS, not started again
    [completed] = callbacks.wait_for(1, "/c")
    port = int(completed["port"])
    assert completed["fingerprint"] == recorded["fingerprint"] == fingerprint(served_certificate(port))
    assert completed["url"] == f"https://127.0.0.1:{port}/"


def test_an_expired_certificate_is_refused_in_one_line(tmp_path: Path, reap: Path) -> None:
    certfile, keyfile = made_certificate(
        tmp_path, datetime(2020, 1, 1, tzinfo=timezone.utc), datetime(2021, 1, 1, tzinfo=timezone.utc)
    )
    with pytest.raises(tls.TLSError, match=r": the certificate expired on 2021-01-01 00:00 UTC; give a current one$"):
        tls.load(certfile, keyfile)
    run = run_cli(
        ["run", "--module", "", "--port", "auto", "--certfile", str(certfile), "--keyfile", str(keyfile)],
        cli_env(reap, path=f"{REAL_JUPYTER.parent}:{SYSTEM_PATH}", JUPYTER_TOKEN=TOKEN),
    )
    assert run.returncode == 14, run.stderr  # failed_to_start, before any server
    assert "the certificate expired on 2021-01-01 00:00 UTC" in run.stderr and jupyter_pids(reap) == []


def test_a_certificate_not_valid_yet_is_served_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # A VM's clock can be behind at boot: the certificate is used, and the warning says why a browser refuses it.
    soon = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=2)
    certfile, keyfile = made_certificate(tmp_path, soon, soon + timedelta(days=90))
    caplog.set_level(logging.WARNING, logger="provisioner")
    assert tls.load(certfile, keyfile).certfile == certfile
    assert f"is valid only from {soon:%Y-%m-%d %H:%M} UTC and this VM's clock says" in caplog.text


def test_a_pem_whose_first_block_is_not_a_plain_certificate_is_refused(tmp_path: Path) -> None:
    """OpenSSL serves the first block: pinning the plain certificate after a TRUSTED one would pin another."""
    mine = tls.self_signed(tmp_path, ["127.0.0.1"])
    other = tls.self_signed(tmp_path, ["127.0.0.1"])
    trusted = subprocess.run(
        ["openssl", "x509", "-in", str(other.certfile), "-trustout"], capture_output=True, text=True, check=True
    ).stdout
    assert trusted.startswith("-----BEGIN TRUSTED CERTIFICATE-----")
    mixed = tmp_path / "mixed.pem"
    mixed.write_text(trusted + mine.certfile.read_text())
    with pytest.raises(tls.TLSError, match=r"its first PEM block is a TRUSTED CERTIFICATE, not a CERTIFICATE"):
        tls.load(mixed, mine.keyfile)
