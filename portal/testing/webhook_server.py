"""A local webhook receiver for tests: `portal.targets.WebhookTarget` (checks Portal's signature, dedupes,
records: the receiver the demo runs too), which here also misbehaves on request.

    from portal.testing.webhook_server import WebhookServer

    with WebhookServer(secret="s3cret") as hook:     # a threaded HTTP server on a free 127.0.0.1 port
        config = hook.connector_config()              # {"url": ..., "secret": "s3cret", "timeout": 5}
        ...                                           # provision through the connector
        hook.calls          # every request received, in order (WebhookCall: headers, body, json, answer)
        hook.effects        # one dict per distinct idempotency key the receiver applied
        hook.absorbed       # the calls answered from an earlier answer (key applied before): no effect
        hook.counts()       # {"received": .., "applied": .., "absorbed": .., "refused": .., "pings": ..}
        hook.hold("revoke")               # apply the next revoke, then withhold its answer ...
        hook.wait_held(timeout=10)        # ... (returns that call) until hook.release()
        hook.accounts       # the receiving system's state: {employee_number: {"active", "level", "external_id"}}
                            # (a `forget` event removes the person from it)
        hook.app_accounts   # the same per application: {(application name, employee_number): {...}}
        hook.fail_next(2)                 # the next 2 requests answer 500 (nothing applied)
        hook.fail_always(503, "down")     # every request answers 503 until hook.behave()
        hook.bad_json_next(1)             # the next request answers 200 with a body that is not JSON
        hook.delay = 2.0                  # wait this long before answering (timeouts)

What it checks, as a real receiver should (the protocol is in `accounts.connectors.webhook`):
`X-Portal-Signature: sha256=<hex>` must be the HMAC-SHA256, keyed with the shared secret, of
`<X-Portal-Timestamp>.<raw body>`; the timestamp must be within `tolerance` seconds of now
(replay protection). A bad signature or stale timestamp answers 401 and applies nothing.
A request whose `X-Portal-Idempotency-Key` was already applied is answered with the first
answer again and applied no second time: it is counted as absorbed (`WebhookCall.absorbed`),
so a test sees how many re-sent calls the key caught rather than only the final state.
`ping` events are answered and never applied. A held call (`hold`) is applied and its answer
recorded at once, as a real target would commit, and the HTTP answer waits for `release()`:
the client is in flight, the effect already happened.

pytest: the root `conftest.py` has a `webhook_server` fixture (a fresh server per test).
"""

from __future__ import annotations

import threading
import time

from portal.targets import WebhookCall, WebhookTarget

__all__ = ["WebhookCall", "WebhookServer"]


class WebhookServer(WebhookTarget):
    """`WebhookTarget` with a test secret by default, and failures, delays and held answers on request."""

    def __init__(self, secret: str = "webhook-test-secret", **kwargs):  # noqa: S107 - a test receiver's default
        super().__init__(secret, **kwargs)
        self.delay = 0.0
        self._failures: list[tuple[int, bytes]] = []
        self._fail_always: tuple[int, bytes] | None = None
        self._hold: tuple[str, str | None, int] | None = None  # (event, application or None, count)
        self._held = threading.Event()
        self._held_call: WebhookCall | None = None
        self._release = threading.Event()
        self.hold_timeout = 120.0

    def stop(self) -> None:
        self.release()
        super().stop()

    # --- behaviour ---------------------------------------------------------------------------
    def fail_next(self, count: int = 1, status: int = 500, body: str | bytes = '{"error": "internal error"}') -> None:
        """The next `count` requests get `status` and `body`, and nothing is applied."""
        with self._lock:
            self._failures.extend([(status, _bytes(body))] * count)

    def bad_json_next(self, count: int = 1, body: str = "<html>OK</html>") -> None:
        """The next `count` requests get a 200 whose body is not JSON, and nothing is applied."""
        self.fail_next(count, status=200, body=body)

    def fail_always(self, status: int = 503, body: str | bytes = '{"error": "service unavailable"}') -> None:
        """Every request gets `status` and `body` until `behave()`."""
        with self._lock:
            self._fail_always = (status, _bytes(body))

    def behave(self) -> None:
        """Stop failing: forget `fail_next`, `fail_always`, `delay` and `hold` (a held answer goes out)."""
        with self._lock:
            self._failures.clear()
            self._fail_always = None
            self.delay = 0.0
        self.release()

    def hold(self, event: str = "revoke", *, application: str | None = None, count: int = 1) -> None:
        """The next `count` calls of `event` (to `application` if given) that are applied have their
        answer withheld until `release()`: the effect is applied, the caller still waits."""
        with self._lock:
            self._hold = (event, application, count)
            self._held.clear()
            self._release.clear()
            self._held_call = None

    def wait_held(self, *, timeout: float = 10) -> WebhookCall:
        """Block until an answer is withheld; the call. RuntimeError after `timeout` seconds."""
        if not self._held.wait(timeout):
            raise RuntimeError(f"No webhook answer matching {self._hold} was withheld within {timeout}s.")
        return self._held_call

    def release(self) -> None:
        """Send withheld answers on (the client may be gone by then) and disarm `hold`."""
        with self._lock:
            self._hold = None
        self._release.set()

    def reset(self) -> None:
        """Forget everything received and applied, and behave."""
        self.behave()
        super().reset()

    # --- the receiver's test hooks ---------------------------------------------------------------------
    def _before_handling(self, call: WebhookCall) -> None:
        if self.delay:
            time.sleep(self.delay)

    def _failure_for(self, call: WebhookCall) -> tuple[int, bytes] | None:
        if self._fail_always is not None:
            return self._fail_always
        if self._failures:
            return self._failures.pop(0)
        return None

    def _before_answering(self, call: WebhookCall) -> None:
        with self._lock:
            hold = self._should_hold(call)
        if hold:
            self._held.set()
            self._release.wait(self.hold_timeout)

    def _should_hold(self, call: WebhookCall) -> bool:
        if self._hold is None or not call.applied:
            return False
        event, application, count = self._hold
        if call.event != event or (application is not None and (call.json or {}).get("application") != application):
            return False
        self._hold = (event, application, count - 1) if count > 1 else None
        call.held = True
        self._held_call = call
        return True


def _bytes(body: str | bytes) -> bytes:
    return body if isinstance(body, bytes) else body.encode()
