"""A local webhook receiver for tests: checks Portal's signature, dedupes, records, and misbehaves on request.

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

import hashlib
import hmac
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class WebhookCall:
    """One request as received, and what the server answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    json: dict | None
    signature_ok: bool
    status: int = 0
    answer: bytes = b""
    applied: bool = False  # this call's effect was applied (the first with its key)
    absorbed: bool = False  # answered with the answer of an earlier call with the same key
    held: bool = False  # its answer was withheld until `release()` (see `WebhookServer.hold`)
    answered: bool = False  # the answer was handed to the HTTP layer (False while held)
    client: tuple[str, int] | None = None  # the caller's address and port (which process: see QCluster)
    received_at: float = field(default_factory=time.time)

    @property
    def idempotency_key(self) -> str:
        return self.headers.get("x-portal-idempotency-key", "")

    @property
    def event(self) -> str:
        return (self.json or {}).get("event", "")


class WebhookServer:
    """A threaded HTTP server on 127.0.0.1 acting as a target system; a context manager."""

    path = "/hooks/portal"

    def __init__(
        self,
        secret: str = "webhook-test-secret",  # noqa: S107 - a test receiver's default
        *,
        host: str = "127.0.0.1",
        tolerance: int = 300,
    ):
        self.secret = secret
        self.host = host
        self.tolerance = tolerance
        self.delay = 0.0
        self.calls: list[WebhookCall] = []
        self.effects: list[dict] = []
        self.accounts: dict[str, dict] = {}  # by employee number (the last event for them, any application)
        self.app_accounts: dict[tuple[str, str], dict] = {}  # by (application name, employee number)
        self._answers: dict[str, tuple[int, bytes]] = {}
        self._failures: list[tuple[int, bytes]] = []
        self._fail_always: tuple[int, bytes] | None = None
        self._hold: tuple[str, str | None, int] | None = None  # (event, application or None, count)
        self._held = threading.Event()
        self._held_call: WebhookCall | None = None
        self._release = threading.Event()
        self.hold_timeout = 120.0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("The webhook server is not started.")
        return f"http://{self.host}:{self._httpd.server_address[1]}{self.path}"

    def __enter__(self) -> WebhookServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> WebhookServer:
        self._httpd = _QuietServer((self.host, 0), _handler_for(self))
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="webhook-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def connector_config(self, **extra) -> dict:
        """A webhook connector config pointing here; `extra` is merged in (e.g. `secret="wrong"`)."""
        return {"url": self.url, "secret": self.secret, "timeout": 5, **extra}

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

    @property
    def absorbed(self) -> list[WebhookCall]:
        """Calls answered from an earlier answer because their idempotency key was applied before."""
        with self._lock:
            return [call for call in self.calls if call.absorbed]

    def calls_with_key(self, key: str) -> list[WebhookCall]:
        """Every call received with idempotency key `key`, applied or absorbed or refused."""
        with self._lock:
            return [call for call in self.calls if call.idempotency_key == key]

    def effects_for(self, *, event: str, application: str | None = None, employee_number: str | None = None):
        """The applied effects of `event`, to `application` and for `employee_number` if given."""
        with self._lock:
            return [
                e
                for e in self.effects
                if e.get("event") == event
                and (application is None or e.get("application") == application)
                and (employee_number is None or _employee_number(e) == employee_number)
            ]

    def counts(self) -> dict[str, int]:
        """How many calls were received, applied, absorbed by their key, refused (4xx/5xx), pings."""
        with self._lock:
            calls = list(self.calls)
        return {
            "received": len(calls),
            "applied": sum(c.applied for c in calls),
            "absorbed": sum(c.absorbed for c in calls),
            "refused": sum(c.status >= 400 for c in calls),
            "pings": sum(c.event == "ping" for c in calls),
        }

    def reset(self) -> None:
        """Forget everything received and applied, and behave."""
        self.behave()
        with self._lock:
            self.calls.clear()
            self.effects.clear()
            self.accounts.clear()
            self.app_accounts.clear()
            self._answers.clear()

    def calls_for(self, event: str) -> list[WebhookCall]:
        return [call for call in self.calls if call.event == event]

    # --- the receiving end ---------------------------------------------------------------------
    def verify(self, headers: dict[str, str], body: bytes) -> bool:
        """Portal's signature check, written independently of the connector on purpose."""
        timestamp = headers.get("x-portal-timestamp", "")
        signature = headers.get("x-portal-signature", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > self.tolerance:
            return False
        expected = hmac.new(self.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(signature, f"sha256={expected}")

    def handle(
        self, path: str, headers: dict[str, str], body: bytes, client: tuple[str, int] | None = None
    ) -> tuple[int, bytes]:
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        call = WebhookCall(
            path=path, headers=headers, body=body, json=payload, signature_ok=self.verify(headers, body), client=client
        )
        with self._lock:
            self.calls.append(call)
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            call.status, call.answer = self._answer(call)
            hold = self._should_hold(call)
        if hold:
            self._held.set()
            self._release.wait(self.hold_timeout)
        call.answered = True
        return call.status, call.answer

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

    def _answer(self, call: WebhookCall) -> tuple[int, bytes]:
        if self._fail_always is not None:
            return self._fail_always
        if self._failures:
            return self._failures.pop(0)
        if call.path != self.path:
            return 404, b'{"error": "no such hook"}'
        if not call.signature_ok:
            return 401, b'{"error": "bad signature or stale timestamp"}'
        payload = call.json
        if not isinstance(payload, dict) or "event" not in payload or not call.idempotency_key:
            return 400, b'{"error": "expected a JSON object with an event and an idempotency key"}'
        if payload.get("idempotency_key") != call.idempotency_key:
            return 400, b'{"error": "idempotency key in body and header differ"}'
        if call.idempotency_key in self._answers:  # delivered before: same answer, no second effect
            call.absorbed = True
            return self._answers[call.idempotency_key]
        if payload["event"] == "ping":
            return 200, b'{"status": "ok"}'
        answer = (200, json.dumps({"status": "ok", "external_id": self._apply(payload)}).encode())
        call.applied = True
        self._answers[call.idempotency_key] = answer
        return answer

    def _apply(self, payload: dict) -> str:
        employee = payload.get("employee") or {}
        number = str(employee.get("employee_number", ""))
        if payload["event"] == "forget":  # erase what this system keeps about the person
            self.accounts.pop(number, None)
            self.app_accounts.pop((str(payload.get("application", "")), number), None)
            self.effects.append(payload)
            return ""
        fresh = {"active": False, "level": None, "external_id": f"ext-{number}", "disabled": False}
        accounts = [
            self.accounts.setdefault(number, dict(fresh)),
            self.app_accounts.setdefault((str(payload.get("application", "")), number), dict(fresh)),
        ]
        event = payload["event"]
        for account in accounts:
            if event in ("provision", "change_level"):
                account.update(active=True, level=payload.get("level"), disabled=False)
            elif event == "revoke":
                account.update(active=False, level=None)
            elif event == "disable":
                account.update(active=False, disabled=True)
        self.effects.append(payload)
        return accounts[0]["external_id"]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that gave up (timeout test) closes the socket before the answer: not an error here.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def _employee_number(payload: dict) -> str:
    return str((payload.get("employee") or {}).get("employee_number", ""))


def _bytes(body: str | bytes) -> bytes:
    return body if isinstance(body, bytes) else body.encode()


def _handler_for(server: WebhookServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in two writes: with Nagle's algorithm on, the body of every answer on a
        # kept-alive connection waits for the client's delayed ACK (~40 ms), as no production server does.
        disable_nagle_algorithm = True

        def do_POST(self):  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            status, answer = server.handle(self.path, headers, body, client=self.client_address[:2])
            self.send_response(status)
            content_type = "application/json" if answer.lstrip().startswith(b"{") else "text/html"
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
            pass

    return Handler
