"""A SCIM 2.0 service provider for tests: scim2-server's own WSGI application, with a counting front door.

    from portal.testing.scim_server import ScimServer

    with ScimServer() as scim:                        # a threaded HTTP server on a free 127.0.0.1 port
        scim.add_group("Admins", tenant="grafana")    # groups a level maps to (not counted as calls)
        config = scim.connector_config("grafana")     # {"url": ".../grafana/v2", "token": ..., "timeout": 5}
        ...                                           # provision through the connector
        scim.calls          # every request received, in order (ScimCall: method, path, json, status, ...)
        scim.effects()      # the calls that changed something: a write (POST/PUT/PATCH/DELETE) answered 2xx
        scim.counts()       # {"received": .., "reads": .., "applied": .., "refused": .., "held": ..}
        scim.user("ada@example.com", tenant="grafana")  # the stored resource, as the server keeps it (dict)
        scim.members("Admins", tenant="grafana")        # the user ids in that group
        scim.fail_next(1, status=429, retry_after=1)    # the next request answers 429 (nothing applied)
        scim.fail_always(503)                           # every request answers 503 until scim.behave()
        scim.hold("PATCH", path="/Users/")              # apply the next matching write, withhold its answer ...
        scim.wait_held(timeout=10)                      # ... (returns that call) until scim.release()

The protocol is served by scim2-server (python-scim, with scim2-models): discovery
(`/ServiceProviderConfig`, `/Schemas`, `/ResourceTypes`), filters, PATCH, PUT, DELETE, ETags,
409 on a duplicate userName. Nothing here answers for it: this module only counts, fails on
request and holds answers. Each *tenant* (`/<tenant>/v2/...`) is a separate target system with its
own users and groups, as two SaaS applications are; `ScimServer(patch=False)` announces (and
enforces, with 501) a provider without PATCH, so a client must fall back to PUT.

A held call (`hold`) is applied by the application at once, as a real target commits, and only
its HTTP answer waits for `release()`: the client is in flight, the effect happened.
Bearer token: requests without `Authorization: Bearer <token>` are refused with 401
(the ServiceProviderConfig excepted, as RFC 7643 §5 allows).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from scim2_models import Group, ScimProvider
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
    failed_on_request: bool = False  # answered by fail_next / fail_always; the application never saw it
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


class ScimServer:
    """scim2-server's WSGI application on a threaded 127.0.0.1 server, counted and controllable."""

    def __init__(
        self,
        token: str = "scim-test-token",  # noqa: S107 - a test peer's default
        *,
        host: str = "127.0.0.1",
        patch: bool = True,
        filter: bool = True,  # noqa: A002 - the ServiceProviderConfig's name
        etag: bool = True,
    ):
        self.token = token
        self.host = host
        self.calls: list[ScimCall] = []
        self.hold_timeout = 120.0
        self._lock = threading.Lock()
        self._failures: list[tuple[int, bytes, dict[str, str]]] = []
        self._fail_always: tuple[int, bytes, dict[str, str]] | None = None
        self._hold: tuple[str, str | None, str | None, int] | None = None  # (method, path part, tenant, count)
        self._held = threading.Event()
        self._held_call: ScimCall | None = None
        self._release = threading.Event()
        self.storages: dict[str, InMemoryStorage] = {}
        config = load_default_service_provider_config()
        config.patch.supported = patch
        config.filter.supported = filter
        config.etag.supported = etag
        config.authentication_schemes = [BEARER_TOKEN_SCHEME]
        self.provider = ScimProvider.from_discovery(
            load_default_schemas().values(), load_default_resource_types().values(), config=config
        )
        self.service = ScimService(self.provider, secret="portal-test-scim-server-cursor-secret")
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

    def url(self, tenant: str = "app") -> str:
        """The SCIM base URL of `tenant` (one target system)."""
        return f"{self.base_url}/{tenant}/v2"

    def connector_config(self, tenant: str = "app", **extra) -> dict:
        """A SCIM connector config for `tenant`; `extra` is merged in (e.g. `groups={...}`, `token="wrong"`)."""
        return {"url": self.url(tenant), "token": self.token, "timeout": 5, **extra}

    def __enter__(self) -> ScimServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, port: int = 0) -> ScimServer:
        self._httpd = make_server(self.host, port, self._wsgi, server_class=_QuietServer, handler_class=_QuietHandler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="scim-server", daemon=True
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

    # --- behaviour ---------------------------------------------------------------------------------
    def fail_next(
        self, count: int = 1, status: int = 503, *, retry_after: int | str | None = None, detail: str = "try later"
    ) -> None:
        """The next `count` requests get `status` (with `Retry-After` if given), and nothing is applied."""
        with self._lock:
            self._failures.extend([_failure(status, retry_after, detail)] * count)

    def fail_always(self, status: int = 503, *, retry_after: int | str | None = None, detail: str = "down") -> None:
        """Every request gets `status` until `behave()`."""
        with self._lock:
            self._fail_always = _failure(status, retry_after, detail)

    def behave(self) -> None:
        """Stop failing and holding (a held answer goes out)."""
        with self._lock:
            self._failures.clear()
            self._fail_always = None
        self.release()

    def hold(self, method: str = "PATCH", *, path: str | None = None, tenant: str | None = None, count: int = 1):
        """The next `count` applied writes with `method` (whose path contains `path`, of `tenant`, if given)
        have their answer withheld until `release()`: the effect is applied, the caller still waits."""
        with self._lock:
            self._hold = (method.upper(), path, tenant, count)
            self._held.clear()
            self._release.clear()
            self._held_call = None

    def wait_held(self, *, timeout: float = 10) -> ScimCall:
        if not self._held.wait(timeout):
            raise RuntimeError(f"No SCIM answer matching {self._hold} was withheld within {timeout}s.")
        return self._held_call

    def release(self) -> None:
        with self._lock:
            self._hold = None
        self._release.set()

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
        """Forget every call, user and group, and behave."""
        self.behave()
        with self._lock:
            self.calls.clear()
            self._apps.clear()
            self.storages.clear()
            self._dispatcher.applications.clear()

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
            failure = self._fail_always or (self._failures.pop(0) if self._failures else None)
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
            hold = self._should_hold(call)
        if hold:
            self._held.set()
            self._release.wait(self.hold_timeout)
        call.answered = True
        start_response(f"{status} {_reason(status)}", list(headers.items()))
        return [answer]

    def _should_hold(self, call: ScimCall) -> bool:
        if self._hold is None or not call.applied:
            return False
        method, path, tenant, count = self._hold
        if call.method != method or (path and path not in call.path) or (tenant and tenant != call.tenant):
            return False
        self._hold = (method, path, tenant, count - 1) if count > 1 else None
        call.held = True
        self._held_call = call
        return True


class _Body:
    """The request body, already read, for the application to read again."""

    def __init__(self, data: bytes):
        self._data, self._pos = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size is None or size < 0 else self._pos + size
        chunk, self._pos = self._data[self._pos : end], min(end, len(self._data))
        return chunk


def _failure(status: int, retry_after, detail: str) -> tuple[int, bytes, dict[str, str]]:
    body = json.dumps(
        {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": str(status), "detail": detail}
    ).encode()
    headers = {"Content-Type": "application/scim+json"}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return status, body, headers


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


class _QuietServer(ThreadingWSGIServer):
    def handle_error(self, request, client_address):
        # A client that gave up (timeout, killed worker) closes the socket before the answer.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code="-", size="-"):  # keep test output quiet
        pass
