"""Target systems on 127.0.0.1 that need nothing beyond pip: a SCIM 2.0 service provider and a webhook receiver.

    from portal.targets import ScimTarget, WebhookTarget

    scim = ScimTarget(token="t0ken").start(port=8001)   # port 0: a free one
    scim.url("slack")             # "http://127.0.0.1:8001/slack/v2": one tenant = one target application
    scim.add_group("Slack Admins", tenant="slack")
    scim.add_user("ada@example.com", tenant="slack", external_id="E1", groups=["Slack Admins"])
    scim.users(tenant="slack")    # {userName: user as the server keeps it}
    scim.counts(tenant="slack")   # {"received", "reads", "writes", "applied", "refused", "held"}
    hook = WebhookTarget(secret="s3cret").start(port=8002)
    hook.url                      # "http://127.0.0.1:8002/hooks/portal"
    hook.app_accounts             # {(application name, employee number): {"active", "level", ...}}

The demo (`make run`: `demo.targets`) runs them as the demo company's applications, so its
automated tasks really provision. The tests' peers (`portal.testing.scim_server.ScimServer`,
`portal.testing.webhook_server.WebhookServer`) are these same servers with failures and withheld
answers on request; nothing else differs, so the demo and the tests meet the same behaviour.

SCIM: the protocol is served by scim2-server (python-scim, with scim2-models): discovery
(`/ServiceProviderConfig`, `/Schemas`, `/ResourceTypes`), filters, PATCH, PUT, DELETE, ETags,
409 on a duplicate userName. This module only routes tenants, counts calls and reads the state.
Requests without `Authorization: Bearer <token>` are refused with 401 (the ServiceProviderConfig
excepted, as RFC 7643 §5 allows). State is kept in memory: it is gone when the process stops.

Webhook: the receiving end of `accounts.connectors.webhook`, written independently of the
connector: `X-Portal-Signature: sha256=<hex>` must be the HMAC-SHA256, keyed with the shared
secret, of `<X-Portal-Timestamp>.<raw body>`, the timestamp within `tolerance` seconds of now;
a bad signature or stale timestamp answers 401 and applies nothing. A request whose
`X-Portal-Idempotency-Key` was applied before gets the first answer again and no second effect
(counted as absorbed). `ping` events are answered and never applied.

`keep_calls` bounds the calls kept for inspection (a long-running demo); the counts still cover
only the calls kept. Default: all (tests).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from scim2_models import Email, Group, GroupMember, Name, ScimProvider, User
from scim2_server.applications.wsgi import TenantDispatcher
from scim2_server.memory import InMemoryStorage
from scim2_server.service import ScimService
from scim2_server.testserver.application import BEARER_TOKEN_SCHEME, BearerTokenApplication
from scim2_server.testserver.cli import ThreadingWSGIServer
from scim2_server.utils import (
    load_default_resource_types,
    load_default_schemas,
    load_default_service_provider_config,
)

WRITES = {"POST", "PUT", "PATCH", "DELETE"}
Answer = tuple[int, bytes, dict[str, str]]


def _trim(calls: list, keep: int | None) -> None:
    if keep is not None and len(calls) > keep * 2:
        del calls[:-keep]


# --- SCIM 2.0 -------------------------------------------------------------------------------------------


@dataclass
class ScimCall:
    """One request as received, and what the server answered."""

    method: str
    tenant: str
    path: str  # below /<tenant>/v2, e.g. "/Users/abc"
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int = 0
    answer: bytes = b""
    applied: bool = False  # a write the application answered 2xx: its effect happened
    applied_at: float | None = None  # when the application had applied it (time.time(), before the answer went out)
    failed_on_request: bool = False  # answered by a test's fail_next / fail_always; the application never saw it
    held: bool = False
    answered: bool = False
    client: tuple[str, int] | None = None
    received_at: float = field(default_factory=time.time)

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    @property
    def answer_json(self) -> Any:
        try:
            return json.loads(self.answer) if self.answer else None
        except ValueError:
            return None

    @property
    def is_write(self) -> bool:
        return self.method in WRITES

    @property
    def resource(self) -> str:
        """ "Users", "Groups", "ServiceProviderConfig", ... (the first segment of the path)."""
        return self.path.strip("/").split("/", 1)[0]

    def __repr__(self) -> str:  # short, for assertion messages
        return f"<{self.method} {self.tenant}{self.path} {self.status}{' applied' if self.applied else ''}>"


class ScimTarget:
    """scim2-server's WSGI application on a threaded 127.0.0.1 server, one tenant per target application."""

    def __init__(
        self,
        token: str,
        *,
        host: str = "127.0.0.1",
        patch: bool = True,
        filter: bool = True,  # noqa: A002 - the ServiceProviderConfig's name
        etag: bool = True,
        keep_calls: int | None = None,
    ):
        self.token = token
        self.host = host
        self.keep_calls = keep_calls
        self.calls: list[ScimCall] = []
        self._lock = threading.Lock()
        self.storages: dict[str, InMemoryStorage] = {}
        config = load_default_service_provider_config()
        config.patch.supported = patch
        config.filter.supported = filter
        config.etag.supported = etag
        config.authentication_schemes = [BEARER_TOKEN_SCHEME]
        self.provider = ScimProvider.from_discovery(
            load_default_schemas().values(), load_default_resource_types().values(), config=config
        )
        self.service = ScimService(self.provider, secret="portal-scim-target-cursor-secret")
        self._apps: dict[str, BearerTokenApplication] = {}
        self._dispatcher = TenantDispatcher(self._tenant_app)
        self._httpd: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("The SCIM server is not started.")
        return f"http://{self.host}:{self._httpd.server_address[1]}"

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def url(self, tenant: str = "app") -> str:
        """The SCIM base URL of `tenant` (one target system)."""
        return f"{self.base_url}/{tenant}/v2"

    def connector_config(self, tenant: str = "app", **extra) -> dict:
        """A SCIM connector config for `tenant`; `extra` is merged in (e.g. `groups={...}`, `token="wrong"`)."""
        return {"url": self.url(tenant), "token": self.token, "timeout": 5, **extra}

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, port: int = 0):
        """Listen on `port` (0: a free one). OSError when the port is taken."""
        self._httpd = make_server(self.host, port, self._wsgi, server_class=_QuietWSGIServer, handler_class=_Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="scim-server", daemon=True
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

    # --- the target systems' state ---------------------------------------------------------------
    def _tenant_app(self, tenant: str) -> BearerTokenApplication:
        with self._lock:
            if tenant not in self._apps:
                self.storages[tenant] = InMemoryStorage()
                self._apps[tenant] = BearerTokenApplication(
                    self.storages[tenant], self.provider, service=self.service, bearer_tokens=[self.token]
                )
            return self._apps[tenant]

    def _storage(self, tenant: str) -> InMemoryStorage:
        self._tenant_app(tenant)
        return self.storages[tenant]

    def add_group(self, display_name: str, *, tenant: str = "app") -> str:
        """Create a group directly in the storage (not a call); its id."""
        storage = self._storage(tenant)
        resource_type = self.service.get_resource_type("Group")
        return storage.create(resource_type, Group(display_name=display_name)).id

    def add_user(
        self,
        user_name: str,
        *,
        tenant: str = "app",
        external_id: str | None = None,
        display_name: str = "",
        given_name: str = "",
        family_name: str = "",
        active: bool = True,
        groups: list[str] = (),
    ) -> str:
        """Create a user directly in the storage (not a call), a member of the groups named (displayName); its id.

        An account the application held before Portal was connected to it, as a real one has.
        """
        storage = self._storage(tenant)
        user = User(
            user_name=user_name,
            external_id=external_id,
            display_name=display_name or None,
            name=Name(given_name=given_name or None, family_name=family_name or None) if given_name else None,
            emails=[Email(value=user_name, type="work", primary=True)] if "@" in user_name else None,
            active=active,
        )
        user_id = storage.create(self.service.get_resource_type("User"), user).id
        for name in groups:
            self.add_members(name, [user_id], tenant=tenant)
        return user_id

    def add_members(self, display_name: str, user_ids: list[str], *, tenant: str = "app") -> None:
        """Make `user_ids` members of group `display_name` directly in the storage (not a call), in one write."""
        storage = self._storage(tenant)
        with storage.lock:
            found = [r for r in storage.resources if isinstance(r, Group) and r.display_name == display_name]
            if not found:
                raise ValueError(f"No group {display_name!r} in tenant {tenant!r}.")
            group = found[0]
            group.members = [*(group.members or []), *(GroupMember(value=i, type="User") for i in user_ids)]
            storage.update(self.service.get_resource_type("Group"), group)

    def resources(self, kind: str = "User", *, tenant: str = "app") -> list[dict]:
        """Every stored resource of `kind` ("User" or "Group"), as JSON dicts."""
        storage = self._storage(tenant)
        with storage.lock:
            found = [r for r in storage.resources if r.meta and r.meta.resource_type == kind]
            return [r.model_dump() for r in found]

    def users(self, *, tenant: str = "app") -> dict[str, dict]:
        """{userName: user} of `tenant`."""
        return {u["userName"]: u for u in self.resources("User", tenant=tenant)}

    def user(self, user_name: str, *, tenant: str = "app") -> dict | None:
        return next((u for name, u in self.users(tenant=tenant).items() if name.lower() == user_name.lower()), None)

    def group(self, display_name: str, *, tenant: str = "app") -> dict | None:
        return next((g for g in self.resources("Group", tenant=tenant) if g.get("displayName") == display_name), None)

    def members(self, display_name: str, *, tenant: str = "app") -> set[str]:
        """The ids of the members of group `display_name` of `tenant`."""
        group = self.group(display_name, tenant=tenant) or {}
        return {m["value"] for m in group.get("members") or []}

    # --- what was received -------------------------------------------------------------------------
    def effects(self, *, tenant: str | None = None, method: str | None = None, resource: str | None = None):
        """The applied writes (a 2xx answer to POST, PUT, PATCH or DELETE), in order."""
        with self._lock:
            calls = list(self.calls)
        return [
            c
            for c in calls
            if c.applied
            and (tenant is None or c.tenant == tenant)
            and (method is None or c.method == method)
            and (resource is None or c.resource == resource)
        ]

    def counts(self, *, tenant: str | None = None) -> dict[str, int]:
        with self._lock:
            calls = [c for c in self.calls if tenant is None or c.tenant == tenant]
        return {
            "received": len(calls),
            "reads": sum(c.method == "GET" for c in calls),
            "writes": sum(c.is_write for c in calls),
            "applied": sum(c.applied for c in calls),
            "refused": sum(c.status >= 400 for c in calls),
            "held": sum(c.held for c in calls),
        }

    def reset(self) -> None:
        """Forget every call, user and group."""
        with self._lock:
            self.calls.clear()
            self._apps.clear()
            self.storages.clear()
            self._dispatcher.applications.clear()

    # --- what a test peer changes (see portal.testing.scim_server) -------------------------------------
    def _failure_for(self, call: ScimCall) -> Answer | None:
        """An answer to give instead of the application's (nothing applied); None: the application answers."""
        return None

    def _before_answering(self, call: ScimCall) -> None:
        """Called once the application answered (its effect applied), before the answer goes out."""

    # --- the front door --------------------------------------------------------------------------
    def _wsgi(self, environ, start_response):
        path_info = environ.get("PATH_INFO", "")
        tenant, _, rest = path_info.lstrip("/").partition("/")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = _Body(body)
        call = ScimCall(
            method=environ["REQUEST_METHOD"],
            tenant=tenant,
            path="/" + rest.removeprefix("v2/").removeprefix("v2"),
            query=dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)),
            headers={
                **{k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")},
                **({"content-type": environ["CONTENT_TYPE"]} if environ.get("CONTENT_TYPE") else {}),
            },
            body=body,
            client=(environ.get("REMOTE_ADDR", ""), int(environ.get("REMOTE_PORT") or 0)),
        )
        with self._lock:
            self.calls.append(call)
            _trim(self.calls, self.keep_calls)
        failure = self._failure_for(call)
        if failure is not None:
            status, answer, headers = failure
            call.failed_on_request = True
        else:
            started: list = []

            def capture(status_line, response_headers, exc_info=None):
                started[:] = [(status_line, response_headers)]
                return lambda data: None

            chunks = self._dispatcher(environ, capture)
            answer = b"".join(chunks)
            status_line, response_headers = started[0]
            status, headers = int(status_line.split(" ", 1)[0]), dict(response_headers)
        with self._lock:
            call.status, call.answer = status, answer
            call.applied = call.is_write and 200 <= status < 300 and not call.failed_on_request
            call.applied_at = time.time() if call.applied else None
        self._before_answering(call)
        call.answered = True
        start_response(f"{status} {_reason(status)}", list(headers.items()))
        return [answer]


class _Body:
    """The request body, already read, for the application to read again."""

    def __init__(self, data: bytes):
        self._data, self._pos = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size is None or size < 0 else self._pos + size
        chunk, self._pos = self._data[self._pos : end], min(end, len(self._data))
        return chunk


def scim_error(status: int, detail: str, *, retry_after: int | str | None = None) -> Answer:
    """A SCIM error answer (RFC 7644 §3.12), with `Retry-After` if given."""
    body = json.dumps(
        {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": str(status), "detail": detail}
    ).encode()
    headers = {"Content-Type": "application/scim+json"}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return status, body, headers


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


class _QuietWSGIServer(ThreadingWSGIServer):
    def handle_error(self, request, client_address):
        # A client that gave up (timeout, killed worker) closes the socket before the answer.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(WSGIRequestHandler):
    def log_request(self, code="-", size="-"):  # the demo's and the tests' output stay quiet
        pass


# --- Signed webhooks ------------------------------------------------------------------------------------


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
    held: bool = False  # its answer was withheld until a test's `release()`
    answered: bool = False  # the answer was handed to the HTTP layer (False while held)
    client: tuple[str, int] | None = None  # the caller's address and port (which process: see QCluster)
    received_at: float = field(default_factory=time.time)

    @property
    def idempotency_key(self) -> str:
        return self.headers.get("x-portal-idempotency-key", "")

    @property
    def event(self) -> str:
        return (self.json or {}).get("event", "")


class WebhookTarget:
    """A threaded HTTP server on 127.0.0.1 acting as a webhook target system; a context manager."""

    path = "/hooks/portal"

    def __init__(self, secret: str, *, host: str = "127.0.0.1", tolerance: int = 300, keep_calls: int | None = None):
        self.secret = secret
        self.host = host
        self.tolerance = tolerance
        self.keep_calls = keep_calls
        self.calls: list[WebhookCall] = []
        self.effects: list[dict] = []
        self.accounts: dict[str, dict] = {}  # by employee number (the last event for them, any application)
        self.app_accounts: dict[tuple[str, str], dict] = {}  # by (application name, employee number)
        self._answers: dict[str, tuple[int, bytes]] = {}
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("The webhook server is not started.")
        return f"http://{self.host}:{self._httpd.server_address[1]}{self.path}"

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("The webhook server is not started.")
        return int(self._httpd.server_address[1])

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, port: int = 0):
        """Listen on `port` (0: a free one). OSError when the port is taken."""
        self._httpd = _QuietHTTPServer((self.host, port), _webhook_handler_for(self))
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

    # --- what was received -------------------------------------------------------------------------
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
        """Forget everything received and applied."""
        with self._lock:
            self.calls.clear()
            self.effects.clear()
            self.accounts.clear()
            self.app_accounts.clear()
            self._answers.clear()

    def calls_for(self, event: str) -> list[WebhookCall]:
        return [call for call in self.calls if call.event == event]

    # --- what a test peer changes (see portal.testing.webhook_server) -------------------------------------
    def _before_handling(self, call: WebhookCall) -> None:
        """Called when a call arrives, before it is answered."""

    def _failure_for(self, call: WebhookCall) -> tuple[int, bytes] | None:
        """An answer to give instead (nothing applied); None: the receiver answers."""
        return None

    def _before_answering(self, call: WebhookCall) -> None:
        """Called once the call is answered (its effect applied), before the answer goes out."""

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
            _trim(self.calls, self.keep_calls)
        self._before_handling(call)
        with self._lock:
            call.status, call.answer = self._failure_for(call) or self._answer(call)
        self._before_answering(call)
        call.answered = True
        return call.status, call.answer

    def _answer(self, call: WebhookCall) -> tuple[int, bytes]:
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


class _QuietHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that gave up (timeout) closes the socket before the answer: not an error here.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def _employee_number(payload: dict) -> str:
    return str((payload.get("employee") or {}).get("employee_number", ""))


def _webhook_handler_for(server: WebhookTarget) -> type[BaseHTTPRequestHandler]:
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

        def log_message(self, format, *args):  # noqa: A002 - keep the output quiet
            pass

    return Handler
