"""The one Django view in front of scim2-server: token, bounds, the Okta/Entra quirks, one transaction.

Order of a request: bounded body (413), bearer token (401, audited when a token was shown but refused),
rate per connection (429), the quirks normalised (op names in any case, a bare-string manager, ""/null
clearing an attribute), then scim2-server's handler over `PortalStorage` inside one transaction: any
SCIM error rolls the whole request back, so nothing is written by a request that fails.
"""

import json
import logging
import re
import typing
from http import HTTPStatus

from django.db import transaction
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from scim2_models import Error, PayloadTooLargeException, SCIMException
from scim2_server.handler import ScimHandler
from scim2_server.requests import ScimRequest
from scim2_server.responses import ScimResponse
from scim2_server.service import ScimService

from accounts.conf import scim_setting
from accounts.scim import services
from accounts.scim.schemas import ENTERPRISE_SCHEMA, provider
from accounts.scim.storage import PortalStorage
from portal.ratelimit import over_rate
from portal.signin import client_address

log = logging.getLogger("portal.scim")
EMAIL_VALUE_PATH = re.compile(r'^emails\[\s*type\s+eq\s+"([^"]+)"\s*\]\.value$', re.IGNORECASE)
MANAGER_PATHS = {f"{ENTERPRISE_SCHEMA}:manager".lower(), "manager"}


class PortalScimService(ScimService):
    """scim2-server's protocol with two of Portal's answers: PATCH answers 200 with the resource (Okta
    reads it), and a PATCH of `emails[type eq "work"].value` where no work email is listed yet adds it
    (what Entra ID sends for a new address) instead of failing with noTarget."""

    def apply_patch(self, current, patch_op, conditions):
        for operation in patch_op.operations or []:
            match = EMAIL_VALUE_PATH.match(str(operation.path or ""))
            if match and str(operation.op).lower() in ("add", "replace"):
                kind = match.group(1)
                emails = list(getattr(current, "emails", None) or [])
                if not any((email.type or "").lower() == kind.lower() for email in emails):
                    current.emails = [*emails, _email_model(type(current))(type=kind)]
        return super().apply_patch(current, patch_op, conditions)

    def patch_response(self, base_url, resource, response_parameters):
        return self.replacement_response(base_url, resource, response_parameters)


def _email_model(model):
    """The class of one `emails` entry of the published User model (built from Portal's schema)."""
    annotation = model.model_fields["emails"].annotation
    while typing.get_args(annotation):
        annotation = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
    return annotation


def _service() -> PortalScimService:
    return PortalScimService(provider())


def error_response(status: int, detail: str, scim_type: str | None = None, headers: dict | None = None) -> HttpResponse:
    body = Error(status=status, scim_type=scim_type, detail=detail).model_dump()
    return _http(ScimResponse(HTTPStatus(status), body, dict(headers or {})))


def _http(response: ScimResponse) -> HttpResponse:
    content = b"" if response.body is None else json.dumps(response.body).encode()
    http = HttpResponse(content, status=response.status.value)
    for name, value in response.headers.items():
        http[name] = value
    http["Cache-Control"] = "no-store"
    return http


def _normalise_patch(operations: list) -> None:
    """Okta and Entra ID as they really send PATCH: op names in any case ("Replace"), a manager given as a
    bare id string, and "" or null as the value of an attribute to clear it."""
    for operation in operations:
        if not isinstance(operation, dict):
            continue
        if isinstance(operation.get("op"), str):
            operation["op"] = operation["op"].strip().lower()
        path = operation.get("path")
        value = operation.get("value")
        if isinstance(path, str) and path.strip().lower() in MANAGER_PATHS:
            if isinstance(value, str) and value:
                operation["value"] = {"value": value}
            elif isinstance(value, dict) and value.get("value") in ("", None) and operation.get("op") != "remove":
                operation["op"] = "remove"
                operation.pop("value", None)
        if operation.get("op") in ("add", "replace") and isinstance(path, str) and value in ("", None):
            operation["op"] = "remove"
            operation.pop("value", None)
        if isinstance(value, dict) and path in (None, ""):
            _normalise_values(value)


def _normalise_values(value: dict) -> None:
    """A value object without path: a bare manager string, and ""/null values, become what they mean."""
    for key in list(value):
        if key.lower() == f"{ENTERPRISE_SCHEMA}:manager".lower() and isinstance(value[key], str):
            value[key] = {"value": value[key]} if value[key] else None
    extension = value.get(ENTERPRISE_SCHEMA)
    if isinstance(extension, dict) and isinstance(extension.get("manager"), str):
        extension["manager"] = {"value": extension["manager"]} if extension["manager"] else None


def _normalise_resource(body: dict, *, creating: bool) -> None:
    if creating and "active" not in body and "userName" in body:
        body["active"] = True  # a User pushed without `active` is active (RFC 7643 leaves it to the provider)
    extension = body.get(ENTERPRISE_SCHEMA)
    if isinstance(extension, dict) and isinstance(extension.get("manager"), str):
        extension["manager"] = {"value": extension["manager"]} if extension["manager"] else None


def normalise(method: str, raw: bytes) -> bytes:
    """The request body with the identity providers' quirks turned into plain RFC 7644 (unparsable JSON
    is passed on untouched: scim2-server answers it with invalidSyntax)."""
    if not raw:
        return raw
    try:
        body = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(body, dict):
        return raw
    if method == "PATCH" and isinstance(body.get("Operations"), list):
        _normalise_patch(body["Operations"])
    elif method in ("POST", "PUT"):
        _normalise_resource(body, creating=method == "POST")
    return json.dumps(body).encode()


def _authenticate(request):
    """The connection of the request's bearer token, or the refusal to send."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    address = client_address(request)
    if scheme.lower() != "bearer" or not token.strip():
        return None, error_response(
            401,
            "Send the connection's token: Authorization: Bearer <token>.",
            headers={"WWW-Authenticate": 'Bearer realm="SCIM"'},
        )
    token = token.strip()
    connection, reason = services.scim_connection_authenticate(token)
    if connection is not None and not reason:
        return connection, None
    if over_rate(f"scim:refused:{address}", scim_setting("REFUSED_PER_MINUTE")):
        return None, error_response(
            429, "Too many refused tokens from this address; wait a minute.", headers={"Retry-After": "60"}
        )
    match = services.TOKEN_RE.match(token)
    services.scim_token_refused(
        connection=connection, reason=reason, address=address, prefix=match.group(1) if match else ""
    )
    detail = "This connection's token was revoked." if reason == "revoked" else "The token is not valid."
    return None, error_response(401, detail, headers={"WWW-Authenticate": 'Bearer realm="SCIM" error="invalid_token"'})


def _read_body(request) -> bytes | None:
    limit = scim_setting("MAX_BODY_BYTES")
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        return None
    body = request.read(limit + 1)
    return None if len(body) > limit else body


@csrf_exempt
def scim_view(request, path: str = ""):
    """Every `/scim/v2/...` request."""
    connection, refusal = _authenticate(request)
    if refusal is not None:
        return refusal
    if over_rate(f"scim:conn:{connection.pk}", scim_setting("REQUESTS_PER_MINUTE")):
        return error_response(
            429,
            f"More than {scim_setting('REQUESTS_PER_MINUTE')} requests a minute from this connection; slow down.",
            headers={"Retry-After": "60"},
        )
    body = _read_body(request)
    service = _service()
    if body is None:
        limit = scim_setting("MAX_BODY_BYTES")
        return _http(service.error_response(PayloadTooLargeException(detail=f"The body is larger than {limit} bytes.")))
    base_url = request.build_absolute_uri("/scim/v2").rstrip("/")
    scim_request = ScimRequest(
        method=request.method,
        base_url=base_url,
        path="/" + path.removesuffix(".scim"),
        query={key: request.GET.get(key) for key in request.GET},
        headers=dict(request.headers),
        body=normalise(request.method.upper(), body),
        subject=connection,
    )
    handler = ScimHandler(service, PortalStorage(connection))
    try:
        with transaction.atomic():
            response = handler.handle(scim_request)
    except SCIMException as exc:
        log.info("SCIM %s %s refused for %s: %s", request.method, path, connection, exc)
        response = service.error_response(exc)
    if response.status.value >= 500:  # pragma: no cover - a bug; the body still says it in SCIM
        log.error("SCIM %s %s answered %s", request.method, path, response.status.value)
    return _http(response)
