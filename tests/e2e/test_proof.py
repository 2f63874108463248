"""The progress page's proof in Jupyter's answers: a real Jupyter, started with our configuration first on its path,
beside the configurations a site and an account already have."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from provisioner import proof
from tests.helpers.cli import cli_env
from tests.helpers.constants import REAL_JUPYTER, TOKEN
from tests.helpers.net import free_port

VALUE = "proof-" + "4d3c2b1a09" * 3


SITE_POLICY = "frame-ancestors https://portal.example"  # what a portal that frames Jupyter would configure


def api_headers(port: int) -> http.client.HTTPMessage:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/api")
        answer = connection.getresponse()
        answer.read()
        assert answer.status == 200
        return answer.headers
    finally:
        connection.close()


@pytest.fixture
def jupyter(reap: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A HOME for a real Jupyter, and the environment it starts with; the servers are stopped afterwards."""
    yield reap, cli_env(reap, path=f"{REAL_JUPYTER.parent}:/usr/bin:/bin", JUPYTER_TOKEN=TOKEN)


def serving(env: Mapping[str, str], home: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    server = subprocess.Popen(
        [str(REAL_JUPYTER), "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}"],
        env=dict(env),
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            api_headers(port)
            return server, port
        except OSError:
            time.sleep(0.1)
    server.kill()
    pytest.fail("Jupyter did not answer in 60 s")


# The ways an account or a site writes Jupyter's response headers, each in its own configuration file.
ACCOUNT_CONFIGS = {
    "python": ("jupyter_server_config.py", "c.ServerApp.tornado_settings = {'headers': {'X-Site': 'kept'}}\n"),
    "lazy": ("jupyter_server_config.py", "c.ServerApp.tornado_settings.update({'headers': {'X-Site': 'kept'}})\n"),
    "json": (
        "jupyter_server_config.json",
        json.dumps({"ServerApp": {"tornado_settings": {"headers": {"X-Site": "kept"}}}}),
    ),
}


@pytest.mark.parametrize("style", sorted(ACCOUNT_CONFIGS))
def test_jupyter_shows_the_proof_and_keeps_the_headers_the_account_configured(
    jupyter: tuple[Path, dict[str, str]], tmp_path: Path, style: str
) -> None:
    home, env = jupyter
    name, text = ACCOUNT_CONFIGS[style]
    (home / ".jupyter").mkdir()
    (home / ".jupyter" / name).write_text(text)
    directory = proof.install(tmp_path)
    server, port = serving(proof.environment(env, directory, VALUE), home)
    try:
        headers = api_headers(port)
        assert headers[proof.HEADER] == VALUE
        assert headers["X-Site"] == "kept"
    finally:
        server.kill()
        server.wait()


def test_a_sites_configuration_path_is_kept_after_ours(jupyter: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    home, env = jupyter
    site = tmp_path / "site"
    site.mkdir()
    (site / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"tornado_settings": {"headers": {"Content-Security-Policy": SITE_POLICY}}}})
    )
    directory = proof.install(tmp_path)
    server, port = serving(proof.environment({**env, proof.CONFIG_PATH_ENV: str(site)}, directory, VALUE), home)
    try:
        headers = api_headers(port)
        assert headers[proof.HEADER] == VALUE
        assert headers["Content-Security-Policy"].startswith(SITE_POLICY)
    finally:
        server.kill()
        server.wait()


@pytest.mark.parametrize("given", ["", "/opt/site/etc/jupyter"])
def test_the_configuration_takes_the_proof_and_itself_out_of_what_kernels_inherit(tmp_path: Path, given: str) -> None:
    directory = proof.install(tmp_path)
    env = proof.environment(
        {"PATH": "/usr/bin:/bin", **({proof.CONFIG_PATH_ENV: given} if given else {})}, directory, VALUE
    )
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, os, sys; from traitlets.config.loader import PyFileConfigLoader; "
            "config = PyFileConfigLoader(sys.argv[1], path=sys.argv[2]).load_config(); "
            "print(json.dumps([os.environ.get(name) for name in sys.argv[3:]]))",
            proof.CONFIG_FILE,
            str(directory),
            proof.ENV,
            proof.CONFIG_PATH_ENV,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(loaded.stdout) == [None, given or None]


def test_without_a_proof_the_configuration_changes_nothing(
    jupyter: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    home, env = jupyter
    directory = proof.install(tmp_path)
    server, port = serving({**env, proof.CONFIG_PATH_ENV: str(directory)}, home)
    try:
        assert proof.HEADER not in api_headers(port)
    finally:
        server.kill()
        server.wait()
