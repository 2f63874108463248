"""The researcher's browser through the VM: Debian's headless chromium on the host, through the forward to the guest,
opens the address early and lands on Notebook's file browser by itself; over TLS, let in only by pinning the
certificate whose fingerprint the signed init_completed carried."""

from __future__ import annotations

import base64
import hashlib
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from provisioner import pageview
from tests.e2e.vm.conftest import BOOT_TIMEOUT, TOKEN, booted, filled, module_stack
from tests.e2e.vm.test_examples import provisioned
from tests.helpers.browser import Tab
from tests.helpers.tls import fingerprint, served_certificate

SLOW = 20  # seconds the module takes to load: a cold CernVM-FS, long enough to open the address meanwhile


def with_options(user_data: str, *options: str) -> str:
    """The example with more options for jupyter-init's run, as a platform that wants them adds them."""
    marker = "    - --user\n"
    assert user_data.count(marker) == 1
    return user_data.replace(marker, "".join(f"    - {option}\n" for option in options) + marker)


def wait_for_the_page(port: int, timeout: float) -> None:
    """Until the guest's port, through the forward, answers with the progress page (over TLS: its certificate is
    judged by the tabs, against the pin)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"https://127.0.0.1:{port}/", timeout=5, context=ssl._create_unverified_context())
        except urllib.error.HTTPError as exc:
            if exc.code == 503 and exc.headers.get(pageview.MARK):
                return
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError(f"the progress page never answered through the forward in {timeout:g} s")


def spki_pin(der: bytes) -> str:
    """The certificate's public key as chromium pins one: base64 of the SHA-256 of its SubjectPublicKeyInfo."""
    key = x509.load_der_x509_certificate(der).public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(key).digest()).decode()


def test_the_pinned_tab_shows_the_progress_page_then_lands_on_the_file_browser_of_the_certificate_named(
    tmp_path: Path, browser: type[Tab]
) -> None:
    """One boot with both: the tab opened during the module load is let in only by the pin, is shown the page, and
    lands on the file browser by itself, behind the certificate the signed init_completed names."""
    user_data = with_options(filled("user-data.yaml"), "--progress-page", "--tls", "self-signed")
    with booted(tmp_path, "12", user_data, module_stack(SLOW)) as vm:
        wait_for_the_page(vm.port, BOOT_TIMEOUT)
        der = served_certificate(vm.port)  # the page's: the server shows the same one
        address = f"https://127.0.0.1:{vm.port}/?token={TOKEN}"
        unpinned = browser(tmp_path / "unpinned")
        try:
            unpinned.navigate(address)
            assert unpinned.wait_for("location.href.startsWith('chrome-error://')", timeout=30)
        finally:
            unpinned.close()
        tab = browser(tmp_path / "pinned", f"--ignore-certificate-errors-spki-list={spki_pin(der)}")
        try:
            tab.navigate(address)
            current = tab.wait_for("document.querySelector('li.current')?.textContent", timeout=30)
            assert current.startswith("loading")
            tab.screenshot(tmp_path / "progress.png")
            tab.wait_for("document.querySelector('.jp-DirListing-content') !== null", timeout=BOOT_TIMEOUT)
            assert (tab.evaluate("location.pathname"), tab.evaluate("location.protocol")) == ("/tree", "https:")
            tab.screenshot(tmp_path / "jupyter.png")
        finally:
            tab.close()
        completed = provisioned(vm, scheme="https")
        assert fingerprint(der) == completed["fingerprint"]
        assert fingerprint(served_certificate(vm.port)) == completed["fingerprint"]
