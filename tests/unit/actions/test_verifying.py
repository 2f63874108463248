from __future__ import annotations

from provisioner.probe import probe
from provisioner.values import parse_base_url
from tests.helpers.net import serve_once


def test_a_probe_reads_the_status_of_an_answer_in_time() -> None:
    port, thread = serve_once(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", delay=0)
    assert probe("127.0.0.1", port, "token", base_url=parse_base_url("/é/")) == 403
    thread.join(5)
