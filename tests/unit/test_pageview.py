"""What the progress page answers, in process: the page or its JSON, the proof only to a GET that carries the token,
nothing of the request sent back, every text escaped."""

from __future__ import annotations

import json

from provisioner import pageview

TOKEN = "a-token-of-many-characters"
TAB = pageview.Tab("/user/alice/api", TOKEN, "the-proof")


def snapshot(failure: tuple[str, str] | None = None) -> dict[str, object]:
    progress = pageview.Progress()
    progress.steps += [pageview.Step("idle", 0.0), pageview.Step("loading", 0.5)]
    progress.failure = failure
    return progress.snapshot(2.0)


def test_a_tab_that_opened_the_address_with_the_token_is_given_the_proof_and_no_other_is() -> None:
    with_token = pageview.answer(f"GET /?token={TOKEN} HTTP/1.1\r\nHost: x\r\n".encode(), snapshot(), TAB)
    without = pageview.answer(b"GET /?token=guess HTTP/1.1\r\nHost: x\r\n", snapshot(), TAB)
    posted = pageview.answer(f"POST /?token={TOKEN} HTTP/1.1\r\n".encode(), snapshot(), TAB)
    assert b'"proof": "the-proof"' in with_token
    assert b"the-proof" not in without and b"the-proof" not in posted
    for answer in (with_token, without, posted):
        assert answer.startswith(b"HTTP/1.0 503 Service Unavailable\r\n")
        assert TOKEN.encode() not in answer and b"guess" not in answer, "nothing of the request is sent back"


def test_the_script_is_answered_json_and_a_head_request_no_body() -> None:
    answer = pageview.answer(b"GET / HTTP/1.1\r\nAccept: application/json\r\n", snapshot(), TAB)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"Content-Type: application/json" in head and f"{pageview.MARK}: 1".encode() in head
    assert [step["state"] for step in json.loads(body)["steps"]] == ["idle", "loading"]
    assert pageview.answer(b"HEAD / HTTP/1.1\r\n", snapshot(), TAB).endswith(b"\r\n\r\n")


def test_a_failure_is_shown_escaped_and_the_data_block_cannot_be_closed_by_a_message() -> None:
    page = pageview.render(snapshot(("failed_to_start", "<script>alert(1)</script>")), "/api", None)
    assert "<script>alert(1)" not in page
    assert "Failed (failed_to_start): &lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("</script>") == 2, "only the page's own two blocks end"
