"""A local webhook receiver for tests: checks Portal's signature, dedupes, records, and misbehaves on request.

    from portal.testing.webhook_server import WebhookServer

    with WebhookServer(secret="s3cret") as hook:     # a threaded HTTP server on a free 127.0.0.1 port
        config = hook.connector_config()              # {"url": ..., "secret": "s3cret", "timeout": 5}
        ...                                           # provision through the connector
        hook.calls          # every request received, in order (WebhookCall: headers, body, json, answer)
        hook.effects        # one dict per distinct idempotency key the receiver applied
        hook.accounts       # the receiving system's state: {employee_number: {"active", "level", "external_id"}}
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
answer again and applied no second time. `ping` events are answered and never applied.

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
    applied: bool = False
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
        """Stop failing: forget `fail_next`, `fail_always` and `delay`."""
        with self._lock:
            self._failures.clear()
            self._fail_always = None
            self.delay = 0.0

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

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        call = WebhookCall(path=path, headers=headers, body=body, json=payload, signature_ok=self.verify(headers, body))
        with self._lock:
            self.calls.append(call)
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            call.status, call.answer = self._answer(call)
        return call.status, call.answer

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
            status, answer = server.handle(self.path, headers, body)
            self.send_response(status)
            content_type = "application/json" if answer.lstrip().startswith(b"{") else "text/html"
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
            pass

    return Handler
