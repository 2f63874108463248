"""Callbacks to the platform: what is sent, and the record of it.

The machine hands the reporter one message per callback and goes on. The reporter makes the callback's fields (ours as
they are, every other one redacted), records it pending at once, never sends a platform callback the record already
holds, and makes the body of each try: the form with a fresh timestamp, signed. provisioner.delivery takes it to its
URL, in order, retried; the reporter records what it came to. A callback that cannot be delivered is logged and
recorded, and never changes the outcome of the run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from provisioner.definition import CallbackPolicy
from provisioner.delivery import SYSTEM_CLOCK, Body, Clock, Lanes, Unsigned, warm_up, where
from provisioner.output import bounded, log
from provisioner.record import Callback, Delivery

if TYPE_CHECKING:
    from provisioner.signing import Signer  # the token's HMAC or the platform's key


PROGRESS = "progress"  # the --progress-url endpoint; its callbacks travel in a lane of their own
SIGNATURE_HEADER = "X-Jupyter-Init-Signature"
FORM = "application/x-www-form-urlencoded"

# The fields whose every value is ours: a status, reason or state of the definition, numbers, a fingerprint, a boot.
OUR_FIELDS = frozenset({"status", "reason", "state", "port", "pid", "fingerprint", "boot", "boot_id"})


class Reporter:
    """Sends callbacks, in the order they were queued, under the retry policy, and records what became of each.

    Delivery (provisioner.delivery) keeps them in order within one URL and across URLs, and holds them until
    release(). The reporter records each one pending when it is queued, and delivered or not when its lane is done with
    it or close() gives up on it.
    """

    def __init__(
        self,
        policy: CallbackPolicy,
        redact: Callable[[str], str],
        *,
        signer: Signer | None = None,
        on_queue: Callable[[Callback], None] = lambda callback: None,
        on_done: Callable[[], object] | None = None,
        seen: Callable[[Callback], bool] = lambda callback: False,
        warm: bool = False,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.redact = redact
        self.signer = signer  # signs every callback's body (provisioner.signing): the token or the platform's key
        self.on_queue = on_queue  # records a new callback, pending, before anything is tried
        self.on_done = on_done
        # Whether the record already holds this platform callback (same endpoint and fields): never sent twice.
        self.seen = seen
        self.callbacks: list[Callback] = []  # what this process queued (new ones and ones an earlier run left)
        # Settles each callback: a lane ending it and close() giving up on it never overwrite one another.
        self._settle = threading.Lock()
        # Deliveries wait for release(): importing requests (~100 ms of CPU) in a thread would slow the main thread
        # on its way to starting the server. Queued callbacks keep their order meanwhile.
        self._lanes = Lanes(policy, self._body, self._settled, redact=redact, clock=clock)
        self._warm = warm  # callbacks are expected: import what they need as soon as that slows nothing

    def release(self) -> None:
        """Start delivering: the server is started (or the run is over), so the imports no longer slow anything.

        With callbacks expected, requests is imported now, in the background, so that a crash reported a second
        later is not held up by ~100 ms of imports.
        """
        if self._lanes.released.is_set():
            return
        self._lanes.released.set()
        if self._warm:
            threading.Thread(target=warm_up, name="callbacks-warm-up", daemon=True).start()

    def send(self, endpoint: str, url: str, fields: Mapping[str, str]) -> Callback | None:
        """Queue a new callback, recorded pending at once; None when the record already has it (sent once only)."""
        # Our own fields are sent as they are, never rewritten by a short token that happens to equal one (`ready`);
        # every other field may quote what others wrote (a tool's error, the server's log) and is redacted.
        callback = Callback(
            endpoint,
            {name: value if name in OUR_FIELDS else bounded(self.redact(value)) for name, value in fields.items()},
        )
        if endpoint != PROGRESS and self.seen(callback):
            log.info("%s callback (%s) is already recorded; not sending it again", endpoint, callback.status)
            return None
        self.on_queue(callback)
        self.resend(callback, url)
        return callback

    def resend(self, callback: Callback, url: str) -> None:
        """Queue a recorded callback that is not delivered yet; its record entry is updated as it goes."""
        callback.done.clear()
        self.callbacks.append(callback)
        self._lanes.put(url, callback)

    def release_after(self, seconds: float) -> None:
        """Release deliveries in `seconds` if nothing has by then: a module load that takes minutes (a cold EESSI
        stack) must not keep `init_started` from the platform, while a run that starts its server sooner than that
        still starts it before the imports."""
        timer = threading.Timer(seconds, self.release)
        timer.daemon = True
        timer.start()

    def close(self, timeout: float) -> list[Callback]:
        """Wait up to `timeout` seconds for every queued callback; what is left is recorded as not delivered."""
        self.release()
        self._lanes.close(timeout)
        with self._settle:
            for callback in self.callbacks:
                if not callback.done.is_set():
                    callback.delivery = Delivery.UNDELIVERED
                    callback.error = callback.error or "not delivered before the callback deadline"
        return self.callbacks

    def _body(self, callback: Callback) -> Body:
        """The exact bytes sent, with a fresh timestamp, and the signature over them."""
        fields = {**callback.fields, "timestamp": str(int(time.time()))}
        body = urlencode(fields).encode()
        headers = {"Content-Type": FORM}
        if self.signer is not None:
            try:
                headers[SIGNATURE_HEADER] = self.signer(body)
            except OSError as exc:  # root would not vouch for it (provisioner.signing): sent unsigned, never
                raise Unsigned(f"not signed: {exc}") from None
        return body, headers

    def _settled(self, url: str, callback: Callback, delivered: bool) -> None:
        """Record what a callback's lane made of it."""
        with self._settle:  # after close() gave up on it, what really happened still wins
            callback.delivery = Delivery.DELIVERED if delivered else Delivery.UNDELIVERED
            callback.done.set()
        if self.on_done is not None:
            self.on_done()
        if not callback.delivered:
            log.warning(
                "warning: %s callback (%s) to %s not delivered after %d attempt(s): %s",
                callback.endpoint,
                callback.status,
                where(url),
                callback.attempts,
                callback.error,
            )
