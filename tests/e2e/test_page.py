"""The progress page: a real listener on a real port, a real run with a slow real Lmod module and a real Jupyter, and
a real browser (headless chromium) that opens the address early and ends on Jupyter's file browser."""

from __future__ import annotations

import contextlib
import http.client
import json
import pwd
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioner import netinfo, page, pageview, proof, tls
from provisioner.actions import port_check
from provisioner.context import RunContext
from provisioner.errors import StepFailed
from provisioner.output import Redactor
from provisioner.secret import Secret
from provisioner.settings import Settings
from tests.helpers.browser import Tab
from tests.helpers.cli import cli_env, read_state, run_cli, start_cli
from tests.helpers.constants import CHECKOUT, MODULE_SECONDS, REAL_JUPYTER, TOKEN
from tests.helpers.definitions import shipped_reasons
from tests.helpers.modules import make_bin
from tests.helpers.net import free_port
from tests.helpers.netns import network_namespace
from tests.helpers.receiver import CallbackServer
from tests.helpers.tls import fingerprint, served_certificate

SQUATTER = CHECKOUT / "tests" / "helpers" / "squatter.py"


def get(
    port: int, path: str = "/", accept: str | None = None, context: ssl.SSLContext | None = None
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request, whatever the status; ConnectionError when nothing listens."""
    if context is None:
        connection: http.client.HTTPConnection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    else:
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    try:
        connection.request("GET", path, headers={"Accept": accept} if accept else {})
        answer = connection.getresponse()
        return answer.status, answer.headers, answer.read()
    finally:
        connection.close()


def trusting(certificate: tls.Certificate) -> ssl.SSLContext:
    """A client that trusts exactly this certificate (the test knows it; its name is the VM's)."""
    context = ssl.create_default_context(cafile=str(certificate.certfile))
    context.check_hostname = False
    return context


def unverified() -> ssl.SSLContext:
    """A client that takes any certificate: for a test that then checks the certificate's fingerprint itself."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def progress(port: int, context: ssl.SSLContext | None = None) -> dict[str, Any] | None:
    """What the page says (its JSON form), or None when what answers is not the page (or nothing does)."""
    try:
        status, headers, body = get(port, f"/tree?token={TOKEN}", "application/json", context)
    except OSError:
        return None
    if headers.get(pageview.MARK) is None:
        return None
    assert status == 503
    shown: dict[str, Any] = json.loads(body)
    return shown


def wait_for_progress(
    port: int, until: str, timeout: float = 30, context: ssl.SSLContext | None = None
) -> dict[str, Any]:
    """The page's JSON once its last step is `until`."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = progress(port, context)
        if seen is not None and seen["steps"] and seen["steps"][-1]["state"] == until:
            return seen
        time.sleep(0.05)
    pytest.fail(f"the page never showed {until!r} in {timeout} s; last seen: {seen}")


PROOF = "proof-" + "0a9b8c7d6e" * 3  # what the fixture's page hands a tab that opened it with the token


def data_of(text: str) -> dict[str, Any]:
    """The data the page gives its script."""
    block = text.split('<script type="application/json" id="progress">', 1)[1].split("</script>", 1)[0]
    shown: dict[str, Any] = json.loads(block)
    return shown


@pytest.fixture
def shown() -> Iterator[page.ProgressPage]:
    redact = Redactor()
    redact.add(Secret(TOKEN))
    tab = pageview.Tab("/user/alice/api", TOKEN, PROOF)
    served = page.ProgressPage("127.0.0.1", free_port(), None, time.monotonic(), redact, tab=tab)
    assert served.start() is None
    yield served
    served.close()


class TestThePage:
    def test_it_answers_503_and_never_echoes_the_address_it_was_asked_for(self, shown: page.ProgressPage) -> None:
        shown.enter("idle")
        shown.enter("loading")
        status, headers, body = get(shown.port, f"/user/alice/tree?token={TOKEN}")
        text = body.decode()
        assert status == 503
        assert headers["Retry-After"] == "1"
        assert headers["Cache-Control"] == "no-store"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers[pageview.MARK] == "1"
        assert "<li class=current>loading" in text
        assert TOKEN not in text
        assert "alice" not in text.replace(shown.tab.probe, "")  # only where the script polls, not from the request
        assert 'http-equiv="refresh"' not in text  # nothing reloads the address without the script's proof

    def test_only_a_tab_that_opened_it_with_the_token_is_given_the_proof(self, shown: page.ProgressPage) -> None:
        shown.enter("loading")
        with_token = data_of(get(shown.port, f"/lab/tree/x.ipynb?a=1&token={TOKEN}")[2].decode())
        assert with_token["proof"] == PROOF
        assert with_token["probe"] == "/user/alice/api"
        for path in (
            "/",
            "/tree?token=",
            f"/tree?token={TOKEN[:-1]}",
            f"/tree?token={TOKEN}x",
            f"/tree?x={TOKEN}",
            f"/tree/{TOKEN}",
            f"/tree#token={TOKEN}",
        ):
            text = get(shown.port, path)[2].decode()
            assert data_of(text)["proof"] is None, path
            assert PROOF not in text, path
        _, headers, body = get(shown.port, f"/?token={TOKEN}", accept="application/json")
        assert PROOF not in body.decode() and PROOF not in str(headers)  # never in what the script polls

    def test_a_failure_shows_its_reason_and_message_escaped_and_without_the_token(
        self, shown: page.ProgressPage
    ) -> None:
        shown.enter("loading")
        shown.enter("failed", "module_load_failed", f"<script>alert(1)</script> {TOKEN}")
        text = get(shown.port)[2].decode()
        assert "Failed (module_load_failed): &lt;script&gt;alert(1)&lt;/script&gt; ***" in text
        assert "<script>alert" not in text
        assert TOKEN not in text
        shown_json = json.loads(get(shown.port, accept="application/json")[2])
        assert shown_json["failure"] == {"reason": "module_load_failed", "message": "<script>alert(1)</script> ***"}
        assert [step["state"] for step in shown_json["steps"]] == ["loading", "failed"]

    def test_only_its_own_script_may_run(self, shown: page.ProgressPage) -> None:
        policy = get(shown.port)[1]["Content-Security-Policy"]
        assert "default-src 'none'" in policy
        assert f"script-src 'sha256-{pageview._SCRIPT_HASH}'" in policy
        assert pageview.SCRIPT in get(shown.port)[2].decode()

    def test_closing_lets_go_of_the_port_even_with_a_connection_open(self, shown: page.ProgressPage) -> None:
        held = socket.create_connection(("127.0.0.1", shown.port))  # a client that sends nothing
        try:
            assert get(shown.port)[0] == 503  # a silent client holds no one else up
            assert shown.holds("127.0.0.1", shown.port)
            assert not netinfo.port_free("127.0.0.1", shown.port)
            shown.close()
            assert not shown.holds("127.0.0.1", shown.port)
            assert netinfo.port_free("127.0.0.1", shown.port)  # as Jupyter binds: it can have the port now
            with pytest.raises(ConnectionRefusedError):
                get(shown.port)
        finally:
            held.close()

    def test_a_port_in_use_is_reported_and_left_alone(self) -> None:
        with socket.socket() as other:
            other.bind(("127.0.0.1", 0))
            other.listen()
            port = other.getsockname()[1]
            served = page.ProgressPage("127.0.0.1", port, None, time.monotonic(), Redactor())
            assert served.start() == f"port {port} is in use"
            assert not served.open

    def test_with_a_certificate_it_is_served_over_tls_only(self, tmp_path: Path) -> None:
        certificate = tls.self_signed(tmp_path, ["127.0.0.1"])
        served = page.ProgressPage("127.0.0.1", free_port(), certificate, time.monotonic(), Redactor())
        assert served.start() is None
        try:
            served.enter("loading")
            assert fingerprint(served_certificate(served.port)) == certificate.fingerprint
            status, headers, _ = get(served.port, context=trusting(certificate))
            assert (status, headers[pageview.MARK]) == (503, "1")
            with pytest.raises((http.client.HTTPException, OSError)):
                get(served.port)  # plain HTTP: no page, no status
        finally:
            served.close()

    def test_any_request_gets_the_page_and_nothing_of_itself_back(self, shown: page.ProgressPage) -> None:
        for request in (
            f"POST /?token={TOKEN} HTTP/1.1\r\nContent-Length: 0\r\n\r\n".encode(),
            f"\x16\x03\x01\x00\xff{TOKEN}\r\n\r\n".encode(),  # TLS spoken to a plain page
            f"GET /{'x' * 70000}?token={TOKEN} HTTP/1.1\r\n\r\n".encode(),  # a head longer than is read
            f"GET / HTTP/1.1\r\nX-Filler: {'y' * 65000}\r\nAccept: application/json\r\n\r\n".encode(),
        ):
            with socket.create_connection(("127.0.0.1", shown.port), timeout=10) as connection:
                with contextlib.suppress(ConnectionResetError):  # it answers before reading all of a long head
                    connection.sendall(request)
                answer = b""
                while chunk := connection.recv(65536):
                    answer += chunk
            assert answer.startswith(b"HTTP/1.0 503 Service Unavailable\r\n"), answer[:80]
            assert f"{pageview.MARK}: 1".encode() in answer
            assert TOKEN.encode() not in answer
            assert b"x" * 100 not in answer and b"y" * 100 not in answer
            assert PROOF.encode() not in answer  # a POST with the token is not a tab that opened the page

    def test_a_client_that_trickles_its_request_is_cut_off_at_the_deadline(
        self, shown: page.ProgressPage, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(page, "CONNECTION_DEADLINE", 1.0)
        with socket.create_connection(("127.0.0.1", shown.port), timeout=10) as connection:
            connection.sendall(b"GET / HTTP/1.0\r\n")
            cut_off = False
            for _ in range(100):  # a header line every 0.1 s, each well within the per-read timeout, for 10 s
                time.sleep(0.1)
                try:
                    connection.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    cut_off = True
                    break
                connection.setblocking(False)
                try:
                    cut_off = connection.recv(1) == b""
                except BlockingIOError:
                    pass
                finally:
                    connection.setblocking(True)
                if cut_off:
                    break
        assert cut_off
        assert get(shown.port)[0] == 503  # and the page goes on for everyone else

    def test_connections_past_the_limit_are_closed_unanswered(self, shown: page.ProgressPage) -> None:
        silent = [socket.create_connection(("127.0.0.1", shown.port), timeout=10) for _ in range(page.MAX_CONNECTIONS)]
        try:
            time.sleep(0.2)  # every one of them accepted and waiting for its request
            with socket.create_connection(("127.0.0.1", shown.port), timeout=10) as extra:
                extra.sendall(b"GET / HTTP/1.0\r\n\r\n")
                with contextlib.suppress(ConnectionResetError):
                    assert extra.recv(65536) == b""
        finally:
            for connection in silent:
                connection.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the slots come back as their connections close
            with contextlib.suppress(OSError):
                if get(shown.port)[0] == 503:
                    break
            time.sleep(0.05)
        else:
            pytest.fail("the page did not answer again once the connections were closed")

    def test_the_port_check_counts_the_port_the_page_holds_as_the_servers(
        self, shown: page.ProgressPage, tmp_path: Path
    ) -> None:
        ctx = RunContext(Settings(port=shown.port, ip="127.0.0.1", home=tmp_path), page=shown)
        port_check.run(ctx)
        assert ctx.port == shown.port
        ctx = RunContext(Settings(port=shown.port, ip="127.0.0.1", home=tmp_path))  # the same port, not ours
        with pytest.raises(StepFailed, match=f"port {shown.port} is already in use"):
            port_check.run(ctx)


def run_args(port: int, module: str, *extra: str) -> list[str]:
    return ["run", "--module", module, "--port", str(port), "--ip", "127.0.0.1", *extra]


class TestARun:
    def test_the_port_shows_the_page_while_a_slow_module_loads_then_the_server(
        self, slow_modules: Path, reap: Path
    ) -> None:
        port = free_port()
        env = cli_env(reap, slow_modules, JUPYTER_TOKEN=TOKEN)
        process = start_cli(run_args(port, "Slow", "--progress-page"), env)
        shown = wait_for_progress(port, "loading")
        assert [step["state"] for step in shown["steps"]] == ["idle", "validating", "loading"]
        assert shown["failure"] is None
        given = data_of(get(port, f"/?token={TOKEN}")[2].decode())["proof"]
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
        assert "progress page" not in stderr
        status, headers, _ = get(port, f"/tree?token={TOKEN}")
        assert headers.get(pageview.MARK) is None  # Jupyter's own answer
        assert status == 200
        assert get(port, "/api")[1][proof.HEADER] == given  # what the tab was given is what Jupyter shows

    def test_a_server_that_cannot_show_the_proof_is_started_with_a_warning(
        self, slow_modules: Path, reap: Path
    ) -> None:
        port = free_port()
        env = cli_env(reap, slow_modules, JUPYTER_TOKEN=TOKEN, JUPYTER_NO_CONFIG="1")  # Jupyter reads no configuration
        run = run_cli(run_args(port, "Slow", "--progress-page"), env)
        assert run.returncode == 0, run.stderr
        assert f"the server does not show the progress page's proof ({proof.HEADER})" in run.stderr
        assert proof.HEADER not in get(port, "/api")[1]

    def test_without_the_option_the_port_stays_closed_until_the_server_listens(
        self, slow_modules: Path, reap: Path
    ) -> None:
        port = free_port()
        process = start_cli(run_args(port, "Slow"), cli_env(reap, slow_modules, JUPYTER_TOKEN=TOKEN))
        try:
            time.sleep(1.5)  # well into the module's 3 s
            assert process.poll() is None
            with pytest.raises(ConnectionRefusedError):
                get(port)
        finally:
            _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr

    def test_a_failure_is_shown_with_its_reason_then_the_port_is_let_go(self, slow_modules: Path, reap: Path) -> None:
        port = free_port()
        process = start_cli(
            run_args(port, "SlowBroken", "--progress-page"), cli_env(reap, slow_modules, JUPYTER_TOKEN=TOKEN)
        )
        shown = wait_for_progress(port, "failed")
        assert shown["failure"]["reason"] == "module_load_failed"
        assert "broken on purpose" in shown["failure"]["message"]
        process.communicate(timeout=60)
        assert process.returncode == 11
        with pytest.raises(ConnectionRefusedError):
            get(port)

    def test_a_signal_while_a_failure_is_shown_ends_the_run_with_the_failures_code(
        self, slow_modules: Path, reap: Path
    ) -> None:
        port = free_port()
        env = cli_env(reap, slow_modules, JUPYTER_TOKEN=TOKEN, **{MODULE_SECONDS: "1"})
        process = start_cli(run_args(port, "SlowBroken", "--progress-page"), env)
        wait_for_progress(port, "failed")
        deadline = time.monotonic() + 10
        while read_state(reap).get("outcome") != "failed" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert read_state(reap)["outcome"] == "failed"  # recorded: what is left is the page's moment
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 11, stderr
        assert "Traceback" not in stderr
        with pytest.raises(ConnectionRefusedError):
            get(port)

    def test_a_server_that_fails_after_the_page_let_go_is_shown_failed_again(self, tmp_path: Path, reap: Path) -> None:
        fake = make_bin(
            tmp_path / "fake", {"jupyter-notebook": "#!/bin/sh\necho the-accounts-own-words\nsleep 1\nexit 1\n"}
        )
        port = free_port()
        env = cli_env(reap, path=f"{fake}:/usr/bin:/bin", JUPYTER_TOKEN=TOKEN)
        # The failed callback cannot be delivered (nothing listens there) and is retried for seconds: the failure is
        # shown meanwhile, not only once the callbacks gave up.
        unreachable = f"http://127.0.0.1:{free_port()}/complete"
        process = start_cli(run_args(port, "", "--progress-page", "--complete-url", unreachable), env)
        shown = wait_for_progress(port, "failed")
        assert process.poll() is None
        assert shown["failure"]["reason"] == "failed_to_start"
        assert shown["failure"]["message"] == "jupyter-notebook exited with code 1"
        assert "starting" in [step["state"] for step in shown["steps"]]
        _, stderr = process.communicate(timeout=90)
        assert process.returncode == 14
        # The log's last lines are the account's own words: in the callback, the record and stderr, not on the page.
        assert "the-accounts-own-words" in stderr

    def test_a_port_someone_else_holds_fails_as_before_with_a_warning(self, reap: Path) -> None:
        with socket.socket() as other:
            other.bind(("127.0.0.1", 0))
            other.listen()
            port = other.getsockname()[1]
            run = run_cli(run_args(port, "", "--progress-page"), cli_env(reap, JUPYTER_TOKEN=TOKEN))
        assert run.returncode == 13
        assert f"warning: no progress page on port {port}: port {port} is in use" in run.stderr

    def test_a_run_that_adopts_the_live_server_shows_no_page(self, reap: Path) -> None:
        port = free_port()
        env = cli_env(reap, path=f"{REAL_JUPYTER.parent}:/usr/bin:/bin", JUPYTER_TOKEN=TOKEN)
        first = run_cli(run_args(port, "", "--progress-page"), env)
        assert first.returncode == 0, first.stderr
        again = run_cli(run_args(port, "", "--progress-page"), env)
        assert again.returncode == 0, again.stderr
        assert "adopting it" in again.stderr
        assert "progress page" not in again.stderr  # it did not even try the port the server holds

    def test_it_needs_a_fixed_port(self, reap: Path) -> None:
        run = run_cli(["run", "--progress-page", "--port", "auto"], cli_env(reap, JUPYTER_TOKEN=TOKEN))
        assert run.returncode == 2
        assert run.stderr.strip().splitlines() == [
            "jupyter-init: error: --progress-page needs a fixed --port: with 'auto' no one knows the address to open"
        ]

    def test_with_tls_the_page_shows_the_certificate_the_server_will_show(
        self, slow_modules: Path, reap: Path, callbacks: CallbackServer
    ) -> None:
        port = free_port()
        env = cli_env(reap, slow_modules, JUPYTER_TOKEN=TOKEN)
        args = run_args(port, "Slow", "--progress-page", "--tls", "self-signed", "--complete-url", callbacks.url("/c"))
        process = start_cli(args, env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                early = served_certificate(port)
                break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("the page never served TLS")
        page_then = progress(port, unverified())  # what showed that certificate was the page
        assert page_then is not None and page_then["steps"][-1]["state"] == "loading"
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
        [completed] = callbacks.wait_for(1, "/c")
        assert completed["fingerprint"] == fingerprint(early) == fingerprint(served_certificate(port))


@contextlib.contextmanager
def opened_early(
    browser: type[Tab], tmp_path: Path, env: dict[str, str], module: str, *, scripts: bool = True
) -> Iterator[tuple[Tab, subprocess.Popen[str], str]]:
    """A run with the progress page, and a headless chromium tab that opened its address (token and all) while the
    module loads; the tab is closed at the end, the run is the test's to wait for."""
    port = free_port()
    tab = browser(tmp_path / "profile")  # before the run: chromium's start takes none of the module's time
    try:
        process = start_cli(run_args(port, module, "--progress-page"), env)
        wait_for_progress(port, "loading")
        if not scripts:
            tab.send("Emulation.setScriptExecutionDisabled", value=True)
        address = f"http://127.0.0.1:{port}/?token={TOKEN}"
        tab.navigate(address)
        yield tab, process, address
    finally:
        tab.close()


class TestInABrowser:
    def test_the_tab_shows_progress_while_the_module_loads_and_ends_on_jupyters_file_browser(
        self, slow_modules: Path, reap: Path, tmp_path: Path, browser: type[Tab]
    ) -> None:
        env = cli_env(reap, slow_modules, JUPYTER_TOKEN=TOKEN, **{MODULE_SECONDS: "6"})
        with opened_early(browser, tmp_path, env, "Slow") as (tab, process, _):
            current = tab.wait_for("document.querySelector('li.current')?.textContent", timeout=10)
            assert current.startswith("loading")
            picture = tab.screenshot(tmp_path / "progress.png")
            assert picture.startswith(b"\x89PNG\r\n\x1a\n")
            text = tab.evaluate("document.body.innerText")
            assert "Jupyter is being set up" in text
            assert TOKEN not in text
            assert process.poll() is None  # still loading: the screenshot is of the page, not of Jupyter
            # The same tab, through the gap and the server's start, on Jupyter's file browser, let in by the token.
            tab.wait_for("document.querySelector('.jp-DirListing-content') !== null", timeout=90)
            assert tab.evaluate("location.pathname") == "/tree"
            tab.screenshot(tmp_path / "jupyter.png")
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr

    def test_without_javascript_the_tab_never_reloads_by_itself_and_says_so(
        self, slow_modules: Path, reap: Path, tmp_path: Path, browser: type[Tab]
    ) -> None:
        env = cli_env(reap, slow_modules, JUPYTER_TOKEN=TOKEN, **{MODULE_SECONDS: "3"})
        with opened_early(browser, tmp_path, env, "Slow", scripts=False) as (tab, process, address):
            first = tab.wait_for("document.querySelector('li.current') && performance.timeOrigin", timeout=10)
            assert "reload it by hand" in tab.evaluate("document.body.innerText")
            _, stderr = process.communicate(timeout=120)
            assert process.returncode == 0, stderr
            time.sleep(3 * pageview.POLL)  # Jupyter answers now: a reload would have happened
            assert tab.evaluate("performance.timeOrigin") == first
            assert tab.evaluate("location.href") == address

    def test_a_failure_stays_in_the_tab_and_the_tab_stops_asking(
        self, slow_modules: Path, reap: Path, tmp_path: Path, browser: type[Tab]
    ) -> None:
        env = cli_env(reap, slow_modules, JUPYTER_TOKEN=TOKEN, **{MODULE_SECONDS: "2"})
        with opened_early(browser, tmp_path, env, "SlowBroken") as (tab, process, address):
            shown = "document.getElementById('failure')"
            failure = tab.wait_for(f"!{shown}.hidden && {shown}.textContent", timeout=20)
            assert failure.startswith("Failed (module_load_failed): module load SlowBroken failed")
            assert tab.wait_for("!document.getElementById('over').hidden", timeout=5)
            process.communicate(timeout=30)
            assert process.returncode == 11
            time.sleep(3 * pageview.POLL)
            assert tab.evaluate(f"{shown}.textContent") == failure
            assert tab.evaluate("document.getElementById('gap').hidden") is True
            assert tab.evaluate("location.href") == address


@contextlib.contextmanager
def squatting(other: pwd.struct_passwd, port: int) -> Iterator[Path]:
    """Another account's squatter on `port` (tests/helpers/squatter.py) for the block; what it was sent goes to the
    file."""
    log = Path(other.pw_dir) / "squatted.log"
    squatter = subprocess.Popen(
        ["runuser", "-u", other.pw_name, "--", sys.executable, str(SQUATTER), str(port), str(log)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd="/",
    )
    try:
        yield log
    finally:
        subprocess.run(["pkill", "-KILL", "-u", other.pw_name], check=False)
        squatter.wait(timeout=10)


def wait_for_squat(log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and log.read_text().startswith("bound"):
            return
        time.sleep(0.05)
    pytest.fail(f"the other account never held the port in {timeout} s")


@contextlib.contextmanager
def squatted(
    browser: type[Tab],
    other: pwd.struct_passwd,
    tmp_path: Path,
    env: dict[str, str],
    module: str,
    *,
    scripts: bool = True,
) -> Iterator[tuple[Tab, subprocess.Popen[str], str, Path]]:
    """opened_early(), in a network namespace of the test's own, with another account squatting the port from the
    moment the page holds it; the squatter's log last."""
    with (
        network_namespace(),
        opened_early(browser, tmp_path, env, module, scripts=scripts) as (tab, process, address),
        squatting(other, urllib.parse.urlsplit(address).port or 0) as log,
    ):
        yield tab, process, address, log


class TestAgainstAnotherAccountOnThePort:
    """A real second account binds the port the moment it is free, every 3 ms, in a network namespace of the test's
    own: in the gap between the page and Jupyter, and after a failure. The researcher's real chromium tab, opened with
    the token, never sends it the token nor a cookie, with or without script."""

    @pytest.mark.parametrize("scripts", [True, False], ids=["script", "no-script"])
    def test_in_the_gap_it_is_sent_no_token_and_the_tab_asks_for_a_reload_by_hand(
        self,
        slow_modules: Path,
        reap: Path,
        tmp_path: Path,
        scripts: bool,
        browser: type[Tab],
        other_account: pwd.struct_passwd,
    ) -> None:
        env = cli_env(reap, slow_modules, JUPYTER_TOKEN=TOKEN, **{MODULE_SECONDS: "5"})
        with squatted(browser, other_account, tmp_path, env, "Slow", scripts=scripts) as (tab, process, address, log):
            tab.wait_for("document.querySelector('li.current') !== null", timeout=10)
            tab.evaluate("document.cookie = 'session=cookie-of-the-researcher; path=/'")
            process.communicate(timeout=120)
            assert process.returncode == shipped_reasons()["port_in_use"]
            wait_for_squat(log, timeout=5)
            if scripts:
                tab.wait_for("!document.getElementById('unproven').hidden", timeout=10)
            time.sleep(4 * pageview.POLL)  # the tab polled it more than once
            sent = log.read_text()
            assert tab.evaluate("location.href") == address  # still the page: nothing was loaded from it
        assert ("GET /api HTTP/1.1" in sent) is scripts  # what it was sent: the tab's polls, or nothing
        assert TOKEN not in sent
        assert "cookie-of-the-researcher" not in sent

    def test_after_a_failure_it_is_sent_nothing(
        self,
        slow_modules: Path,
        reap: Path,
        tmp_path: Path,
        browser: type[Tab],
        other_account: pwd.struct_passwd,
    ) -> None:
        env = cli_env(reap, slow_modules, JUPYTER_TOKEN=TOKEN, **{MODULE_SECONDS: "2"})
        with squatted(browser, other_account, tmp_path, env, "SlowBroken") as (tab, process, address, log):
            process.communicate(timeout=60)
            assert process.returncode == shipped_reasons()["module_load_failed"]
            wait_for_squat(log, timeout=5)
            time.sleep(6 * pageview.POLL)
            sent = log.read_text()
            assert TOKEN not in sent
            assert sent == "bound\n"  # not even a poll: the run was over
            assert tab.evaluate("!document.getElementById('over').hidden")
            assert tab.evaluate("location.href") == address
