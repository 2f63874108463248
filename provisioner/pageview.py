"""What the progress page shows and answers (provisioner.page serves it): the run's steps, its failure, the script
that polls and loads the server once it shows the run's proof, and the headers that keep the page to itself."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from provisioner import proof

MARK = "X-Provisioner-Progress"  # on every answer of the page: what the script tells apart from Jupyter's


POLL = 1.0  # seconds between the script's polls


@dataclass
class Step:
    state: str
    at: float  # seconds since the run began


@dataclass
class Progress:
    """What the page shows, changed by the run and read by the page's threads (under `lock`)."""

    steps: list[Step] = field(default_factory=list)
    failure: tuple[str, str] | None = None  # reason, message (redacted)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def snapshot(self, elapsed: float) -> dict[str, Any]:
        with self.lock:
            steps = [{"state": step.state, "at": round(step.at, 2)} for step in self.steps]
            failure = self.failure
        return {
            "steps": steps,
            "elapsed": round(elapsed, 2),
            "failure": {"reason": failure[0], "message": failure[1]} if failure else None,
        }


SCRIPT = (
    """
"use strict";
const shown = JSON.parse(document.getElementById("progress").textContent);
// Given only to a tab that opened the address with the token: what the run's own Jupyter answers with.
const proof = shown.proof;
let base = shown, since = performance.now();
const clock = (s) => s < 60 ? s.toFixed(1) + " s" : Math.floor(s / 60) + " min " + Math.floor(s % 60) + " s";
const note = (shownNote) => ["gap", "unproven", "over"].forEach((id) => {
  document.getElementById(id).hidden = id !== shownNote;
});
function draw() {
  const now = base.elapsed + (performance.now() - since) / 1000;
  const rows = document.getElementById("steps");
  rows.replaceChildren();
  base.steps.forEach((step, i) => {
    const last = i === base.steps.length - 1, row = document.createElement("li");
    const end = last ? (base.failure ? step.at : now) : base.steps[i + 1].at;
    row.textContent = step.state + " \\u2014 " + clock(Math.max(0, end - step.at));
    if (last && !base.failure) row.className = "current";
    rows.append(row);
  });
  const failure = document.getElementById("failure");
  failure.hidden = !base.failure;
  if (base.failure) failure.textContent = "Failed (" + base.failure.reason + "): " + base.failure.message;
}
async function poll() {
  let answer;
  try {
    // Never the token, never a cookie, never a redirect followed: whoever holds the port now may not be Jupyter.
    answer = await fetch(shown.probe, {
      cache: "no-store", credentials: "omit", redirect: "error", referrerPolicy: "no-referrer",
      headers: {Accept: "application/json"},
    });
  } catch (e) {
    note("gap");  // nothing listens for a moment: the page let go of the port and Jupyter is starting
    setTimeout(poll, __POLL__);
    return;
  }
  if (answer.headers.has("__MARK__")) {
    try { base = await answer.json(); since = performance.now(); } catch (e) { /* a page cut short: next time */ }
    note(null);
  } else if (proof && answer.headers.get("__PROOF__") === proof) {
    location.reload();  // the run's own Jupyter: the address, token and all, goes to it alone
    return;
  } else {
    note("unproven");
  }
  if (base.failure) { note("over"); return; }  // the run is over: nothing more to ask anyone
  setTimeout(poll, __POLL__);
}
setInterval(draw, 100);
draw();
if (base.failure) note("over"); else setTimeout(poll, __POLL__);
""".replace("__MARK__", MARK)
    .replace("__PROOF__", proof.HEADER)
    .replace("__POLL__", str(int(POLL * 1000)))
)


# Only this script may run: a message that got past the escaping could not add one.
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()


HEADERS = {
    "Retry-After": str(int(POLL) or 1),
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the address holds the token
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        f"default-src 'none'; script-src 'sha256-{_SCRIPT_HASH}'; style-src 'unsafe-inline'; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    MARK: "1",
}


STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 40em; margin: 3em auto; padding: 0 1em; color: #222 }
ol { padding-left: 1.2em } li.current { font-weight: bold } li.current::after { content: " \\2026" }
#failure { color: #a00; font-weight: bold } #gap, #unproven, #over, #noscript { color: #555 }
"""


@dataclass(frozen=True)
class Tab:
    """What the page's script is given besides the progress: where to poll, and the proof, for a tab that opened the
    address with the token."""

    probe: str  # {base_url}api: Jupyter answers it without the token and without a redirect
    token: str | None
    proof: str

    def proof_for(self, target: bytes) -> str | None:
        """The proof, when the request's target carries the token as `?token=` (Jupyter's own way); else None."""
        if self.token is None:
            return None
        query = urllib.parse.urlsplit(target.decode("latin-1")).query
        given = [value for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True) if key == "token"]
        token = self.token.encode()
        return self.proof if any(hmac.compare_digest(value.encode(), token) for value in given) else None


def render(snapshot: dict[str, Any], probe: str, proof_value: str | None) -> str:
    """The page: readable as it is (no script needed), kept current by its script."""
    steps = snapshot["steps"]
    rows = []
    for i, step in enumerate(steps):
        end = steps[i + 1]["at"] if i + 1 < len(steps) else snapshot["elapsed"]
        current = i + 1 == len(steps) and snapshot["failure"] is None
        mark = " class=current" if current else ""
        rows.append(f"<li{mark}>{html.escape(step['state'])} \u2014 {end - step['at']:.1f} s</li>")
    failure = snapshot["failure"]
    failed = (
        f"Failed ({html.escape(failure['reason'])}): {html.escape(failure['message'])}" if failure is not None else ""
    )
    title = "Jupyter could not be started" if failure else "Jupyter is being set up"
    # The data for the script, in a block no browser runs; "<" escaped so that no text can close the block.
    data = json.dumps({**snapshot, "probe": probe, "proof": proof_value}).replace("<", "\\u003c")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title><style>{STYLE}</style></head>
<body><h1>{title}</h1>
<p>This address becomes your Jupyter server when it is ready.</p>
<noscript><p id="noscript">Without JavaScript this page does not follow the run: reload it by hand once the platform
says your notebook is ready.</p></noscript>
<ol id="steps">{"".join(rows)}</ol>
<p id="failure"{"" if failure else " hidden"}>{failed}</p>
<p id="gap" hidden>Jupyter is starting\u2026</p>
<p id="unproven" hidden>Something other than this page answers at this address, and it has not shown that it is the
Jupyter server this run started, so this page does not open it by itself. Reload this page by hand once the platform
says your notebook is ready.</p>
<p id="over" hidden>This run is over. Reload this page by hand once the platform starts it again.</p>
<script type="application/json" id="progress">{data}</script>
<script>{SCRIPT}</script>
</body></html>
"""


def answer(request: bytes, snapshot: dict[str, Any], tab: Tab) -> bytes:
    """The whole answer to a request, whatever it asked: the page, or its JSON form for the page's own script. Only
    the request's target (for the token) and `Accept` are read; nothing of the request is sent back."""
    lines = request.split(b"\n")
    method, _, rest = lines[0].partition(b" ")
    accept = b"".join(line for line in lines[1:] if line[:7].lower() == b"accept:")
    if b"application/json" in accept:
        content, kind = json.dumps(snapshot), "application/json"
    else:
        # A tab opens the address with GET: only that is given the proof, never an answer to any other method.
        given = tab.proof_for(rest.partition(b" ")[0]) if method == b"GET" else None
        content, kind = render(snapshot, tab.probe, given), "text/html; charset=utf-8"
    payload = content.encode()
    head = [
        "HTTP/1.0 503 Service Unavailable",
        "Server: jupyter-init",
        f"Content-Type: {kind}",
        f"Content-Length: {len(payload)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in HEADERS.items()),
    ]
    return "\r\n".join(head).encode() + b"\r\n\r\n" + (b"" if method == b"HEAD" else payload)
