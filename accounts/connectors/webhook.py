"""The webhook connector: an HMAC-signed JSON POST per operation, to a system that implements the receiving end.

Config (`Application.connector_config`)::

    {"url": "https://ops.example.com/hooks/portal",
     "secret": "...",              # HMAC-SHA256 key shared with the receiver; or "secret_env": "ENV_VAR_NAME"
     "timeout": 10,                # seconds, optional
     "ca_file": "/path/ca.pem"}    # optional, to trust an internal CA

The request (one per operation)::

    POST <url>
    Content-Type: application/json
    X-Portal-Event: provision | change_level | revoke | disable | forget | ping
    X-Portal-Idempotency-Key: <key>
    X-Portal-Timestamp: <unix seconds>
    X-Portal-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>

    {"event": "provision", "idempotency_key": "<key>", "application": "Ops Console",
     "employee": {"employee_number": "E000123", "work_email": "ada@example.com",
                  "first_name": "Ada", "last_name": "Lovelace"},
     "level": "operator", "external_id": ""}

What the receiver must do:

- Verify the signature over `<timestamp>.<body>` with a constant-time compare and refuse a
  timestamp more than 5 minutes from its clock: the timestamp is signed, so an old request
  cannot be replayed with a fresh one.
- Apply each idempotency key at most once; for a key it has seen, answer as the first time.
  The key is `<task id>:<event>:<application id>:<employee id>`: the lifecycle task's id (the
  `idempotency_key` Portal's services pass) made specific to the call, so a retry of the same
  task sends the same key and the same body (the timestamp is only in the headers), while
  one task acting for several people or applications sends distinct keys.
- Answer 2xx with `{"status": "ok", "external_id": "<its account id>"}`. Anything else (another
  status, a body that is not JSON, a status other than "ok") is a failure: Portal raises
  ConnectorError naming the HTTP status and the receiver's message, and the task retries.
- `revoke` and `disable` of an account it does not have are done already: answer "ok".
- `forget` (sent once Portal's retention purge has anonymised the person): erase everything the
  receiver keeps about them. Its body names the person by employee number and external id only
  (`{"event": "forget", "idempotency_key": ..., "application": ..., "employee":
  {"employee_number": ...}, "external_id": ...}`). A person it does not know is forgotten already:
  answer "ok".
- `ping` (sent by `check_connection`, e.g. when the admin saves the config) has no effect;
  answer it like any other event.

There is no read operation in this protocol: `read_state` only says what the arguments say
(see there). Portal's own entitlement status is the record; the provisioning services check
it before calling, so provisioning an entitlement that is already active sends nothing.
"""

import http.cookiejar
import json
import os
import threading
import time
import uuid
from urllib.parse import urlsplit

import requests
from django.core.exceptions import ValidationError

from accounts.connectors.base import (
    AccountState,
    Connector,
    ConnectorError,
    bad_setting,
    check_secret_setting,
    check_timeout_setting,
    missing_setting,
    register_connector,
)
from portal.signing import sign  # the one signature scheme; event hooks (portal.events) use it too

DEFAULT_TIMEOUT = 10
MIN_SECRET_LENGTH = 16
KNOWN_SETTINGS = {"url", "secret", "secret_env", "timeout", "ca_file"}
USER_AGENT = "Portal-Webhook/1"


_local = threading.local()


def http_session() -> requests.Session:
    """This thread's HTTP session: connections to receivers stay open between calls (keep-alive), so a
    burst of revocations pays one TCP and TLS handshake per receiver, not one per call.

    One per thread and per process (a forked worker never shares its parent's sockets); it keeps no
    cookies, so every call stands on its own signature.
    """
    if getattr(_local, "pid", None) != os.getpid():
        session = requests.Session()
        session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        _local.session, _local.pid = session, os.getpid()
    return _local.session


@register_connector
class WebhookConnector(Connector):
    """Signed JSON POSTs to a receiver that dedupes by idempotency key."""

    kind = "webhook"
    secret_fields = ("secret",)
    supports_read_state = False
    supports_forget = True
    example_config = {"url": "https://ops.example.com/hooks/portal", "secret_env": "PORTAL_OPS_WEBHOOK_SECRET"}

    # --- configuration -------------------------------------------------------------------------
    @classmethod
    def validate_config(cls, config: dict, *, access_levels: list[str] | None = None) -> None:
        super().validate_config(config, access_levels=access_levels)
        errors: list[ValidationError] = []
        unknown = sorted(set(config) - KNOWN_SETTINGS)
        if unknown:
            errors.append(
                bad_setting(
                    ", ".join(unknown),
                    f"not a webhook setting; the settings are {', '.join(sorted(KNOWN_SETTINGS))}.",
                )
            )
        url = config.get("url")
        if not url:
            errors.append(missing_setting("url", "where to POST, e.g. https://ops.example.com/hooks/portal"))
        elif not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            errors.append(bad_setting("url", "must be an http:// or https:// URL with a host."))
        secret_errors = check_secret_setting(config, "secret", "the HMAC-SHA256 key shared with the receiver")
        errors.extend(secret_errors)
        secret = config.get("secret")
        if not secret_errors and isinstance(secret, str) and len(secret) < MIN_SECRET_LENGTH:
            errors.append(bad_setting("secret", f"must be at least {MIN_SECRET_LENGTH} characters long."))
        if "ca_file" in config and not isinstance(config["ca_file"], str):
            errors.append(bad_setting("ca_file", "must be the path of a PEM file."))
        errors.extend(check_timeout_setting(config))
        if errors:
            raise ValidationError(errors)

    def check_connection(self) -> None:
        """Send a signed `ping`: checks the URL, the network and (if the receiver verifies) the secret."""
        self._post({"event": "ping", "idempotency_key": f"ping:{uuid.uuid4()}", "application": self.application.name})

    # --- operations ------------------------------------------------------------------------------
    def provision(self, *, employee, level: str, idempotency_key: str) -> AccountState:
        answer = self._send("provision", employee, idempotency_key, level=level, external_id="")
        return AccountState(exists=True, active=True, level=level, external_id=_external_id(answer))

    def change_level(self, *, employee, external_id: str, level: str, idempotency_key: str) -> AccountState:
        answer = self._send("change_level", employee, idempotency_key, level=level, external_id=external_id)
        return AccountState(exists=True, active=True, level=level, external_id=_external_id(answer) or external_id)

    def revoke(self, *, employee, external_id: str, idempotency_key: str) -> AccountState:
        answer = self._send("revoke", employee, idempotency_key, level=None, external_id=external_id)
        return AccountState(exists=False, external_id=_external_id(answer) or external_id)

    def disable(self, *, employee, external_id: str, idempotency_key: str) -> AccountState:
        answer = self._send("disable", employee, idempotency_key, level=None, external_id=external_id)
        return AccountState(exists=True, active=False, external_id=_external_id(answer) or external_id)

    def forget(self, *, employee, external_id: str, idempotency_key: str) -> AccountState:
        """A signed `forget` event naming the person by employee number and external id only."""
        if not idempotency_key:
            raise ConnectorError("A webhook call needs an idempotency key (the task id).", retryable=False)
        self._post(
            {
                "event": "forget",
                "idempotency_key": self.delivery_key("forget", employee, idempotency_key),
                "application": self.application.name,
                "employee": {"employee_number": employee.employee_number},
                "external_id": external_id or "",
            }
        )
        return AccountState(exists=False)

    def read_state(self, *, employee, external_id: str) -> AccountState:
        """Unsupported by the protocol: nothing is asked. Says "exists" only when an external id is known."""
        return AccountState(exists=bool(external_id), external_id=external_id)

    # --- plumbing ------------------------------------------------------------------------------------
    def delivery_key(self, event: str, employee, idempotency_key: str) -> str:
        """The key the receiver dedupes on (see the module docstring)."""
        return f"{idempotency_key}:{event}:{self.application.pk}:{employee.pk}"

    def _send(self, event: str, employee, idempotency_key: str, *, level, external_id: str) -> dict:
        if not idempotency_key:
            raise ConnectorError("A webhook call needs an idempotency key (the task id).", retryable=False)
        payload = {
            "event": event,
            "idempotency_key": self.delivery_key(event, employee, idempotency_key),
            "application": self.application.name,
            "employee": {
                "employee_number": employee.employee_number,
                "work_email": employee.work_email,
                "first_name": employee.preferred_name or employee.first_name,
                "last_name": employee.last_name,
            },
            "level": level,
            "external_id": external_id or "",
        }
        return self._post(payload)

    def _post(self, payload: dict) -> dict:
        self.require_valid_config()
        url = self.config.get("url", "")
        timeout = self.config.get("timeout", DEFAULT_TIMEOUT)
        # Same key, same bytes: sorted keys, no whitespace. The timestamp lives in the headers only.
        body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Portal-Event": payload["event"],
            "X-Portal-Idempotency-Key": payload["idempotency_key"],
            "X-Portal-Timestamp": timestamp,
            "X-Portal-Signature": sign(self.secret("secret"), timestamp, body),
        }
        try:
            response = http_session().post(
                url,
                data=body,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
                verify=self.config.get("ca_file") or True,
            )
        except requests.Timeout as exc:
            raise ConnectorError(f"Webhook {url} did not answer within {timeout} s: {_reason(exc)}") from exc
        except requests.RequestException as exc:
            raise ConnectorError(f"Webhook {url} is unreachable: {_reason(exc)}") from exc
        text = response.text
        if not 200 <= response.status_code < 300:
            raise ConnectorError(
                f"Webhook {url} answered HTTP {response.status_code}: {_peer_message(text)}",
                retryable=response.status_code >= 500 or response.status_code in (408, 425, 429),
            )
        try:
            answer = json.loads(text)
        except ValueError:
            raise ConnectorError(
                f"Webhook {url} answered HTTP {response.status_code} with a body that is not JSON: {_excerpt(text)}"
            ) from None
        if not isinstance(answer, dict) or answer.get("status") != "ok":
            raise ConnectorError(
                f'Webhook {url} answered HTTP {response.status_code} without "status": "ok": {_peer_message(text)}'
            )
        return answer


def _external_id(answer: dict) -> str:
    value = answer.get("external_id")
    return "" if value is None else str(value)


def _excerpt(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return (text[:limit] + "…") if len(text) > limit else (text or "(empty body)")


def _peer_message(text: str) -> str:
    """The receiver's own words: its JSON "error"/"message"/"detail", or the start of the body."""
    try:
        data = json.loads(text)
    except ValueError:
        return _excerpt(text)
    if isinstance(data, dict):
        for key in ("error", "message", "detail"):
            if data.get(key):
                return _excerpt(str(data[key]))
    return _excerpt(text)


def _reason(exc: Exception) -> str:
    """The innermost cause (e.g. "[Errno 111] Connection refused") rather than urllib3's wrapping of it."""
    cause: BaseException = exc
    for _ in range(10):  # bounded: a context chain could loop
        if cause.__context__ is None:
            break
        cause = cause.__context__
    text = str(cause)
    if "[Errno" in text:
        return text[text.index("[Errno") :]
    return str(exc) if cause is exc else f"{text} ({type(exc).__name__})"
