"""A SCIM 2.0 service provider for tests: `portal.targets.ScimTarget` (scim2-server's own WSGI
application behind a counting front door) that also fails and holds answers on request.

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
409 on a duplicate userName. Nothing here answers for it: `portal.targets` counts (the same
server the demo runs), this module adds failures on request and held answers. Each *tenant*
(`/<tenant>/v2/...`) is a separate target system with its own users and groups, as two SaaS
applications are; `ScimServer(patch=False)` announces (and enforces, with 501) a provider
without PATCH, so a client must fall back to PUT.

A held call (`hold`) is applied by the application at once, as a real target commits, and only
its HTTP answer waits for `release()`: the client is in flight, the effect happened.
Bearer token: requests without `Authorization: Bearer <token>` are refused with 401
(the ServiceProviderConfig excepted, as RFC 7643 §5 allows).
"""

from __future__ import annotations

import threading

from portal.targets import Answer, ScimCall, ScimTarget, scim_error

__all__ = ["ScimCall", "ScimServer"]


class ScimServer(ScimTarget):
    """`ScimTarget` with a test token by default, and failures and held answers on request."""

    def __init__(self, token: str = "scim-test-token", **kwargs):  # noqa: S107 - a test peer's default
        super().__init__(token, **kwargs)
        self.hold_timeout = 120.0
        self._failures: list[Answer] = []
        self._fail_always: Answer | None = None
        self._hold: tuple[str, str | None, str | None, int] | None = None  # (method, path part, tenant, count)
        self._held = threading.Event()
        self._held_call: ScimCall | None = None
        self._release = threading.Event()

    def stop(self) -> None:
        self.release()
        super().stop()

    # --- behaviour ---------------------------------------------------------------------------------
    def fail_next(
        self, count: int = 1, status: int = 503, *, retry_after: int | str | None = None, detail: str = "try later"
    ) -> None:
        """The next `count` requests get `status` (with `Retry-After` if given), and nothing is applied."""
        with self._lock:
            self._failures.extend([scim_error(status, detail, retry_after=retry_after)] * count)

    def fail_always(self, status: int = 503, *, retry_after: int | str | None = None, detail: str = "down") -> None:
        """Every request gets `status` until `behave()`."""
        with self._lock:
            self._fail_always = scim_error(status, detail, retry_after=retry_after)

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

    def reset(self) -> None:
        """Forget every call, user and group, and behave."""
        self.behave()
        super().reset()

    # --- the front door's test hooks -------------------------------------------------------------------
    def _failure_for(self, call: ScimCall) -> Answer | None:
        with self._lock:
            return self._fail_always or (self._failures.pop(0) if self._failures else None)

    def _before_answering(self, call: ScimCall) -> None:
        with self._lock:
            hold = self._should_hold(call)
        if hold:
            self._held.set()
            self._release.wait(self.hold_timeout)

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
