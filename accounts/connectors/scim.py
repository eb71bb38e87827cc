"""The SCIM 2.0 connector: accounts and group membership in a target application's SCIM service (RFC 7644).

Config (`Application.connector_config`)::

    {
      "url": "https://app.example.com/scim/v2",   # the service's base URL (where /Users and /Groups are)
      "token": "...",                             # bearer token; or "token_env": "NAME_OF_ENV_VAR"
      "groups": {"admin": "Admins"},              # optional: level → remote group (displayName, or "id:<id>")
      "on_revoke": "deactivate",                  # or "delete" (the account is deleted on revocation)
      "user_name_from": "email",                  # or "employee_number": what userName holds
      "timeout": 10,                              # seconds, connect and each answer
      "max_retries": 3,                           # re-sends of one request answered 429 or 5xx
      "max_retry_wait": 10,                       # seconds the re-sends of one request may wait in all
      "ca_file": "/etc/ssl/certs/app-ca.pem"      # optional, to trust an internal CA
    }

Model in the target:

- A person is a `User`: userName (work email, or employee number), externalId (the employee
  number: Portal is the provisioning client, RFC 7643 §3.1), name, displayName, the work email,
  title, active. The user's `id` is the `external_id` Portal keeps on the entitlement.
- A level is membership of its group (`groups`), and of no other group of this application.
  A level with no group means "an active account" only; at most one level may go without a
  group, or Portal could not tell levels apart in the target. Groups must exist in the target
  (`check_connection` says which do not); Portal does not create them.
- Revoke: out of this application's groups, then `active: false` (default), or DELETE
  (`on_revoke: delete`). Disable: `active: false`, memberships kept, so provisioning again
  re-activates the account where it was. Forget (retention purge): DELETE, the user found by
  the id Portal kept or by `externalId eq <employee number>` (the name and email are purged).

Protocol: every operation reads `/ServiceProviderConfig` first (kept for `DISCOVERY_TTL`
seconds per process): PATCH where the target supports it, else PUT of the whole resource (with
`If-Match` where it supports ETags). A target that answers PATCH with 501 despite its config is
written with PUT from then on. A request answered 429, 500, 502, 503 or 504 is sent again up to
`max_retries` times, after the target's `Retry-After` (seconds or an HTTP date) or a short
backoff, within `max_retry_wait` seconds in all; past that the operation fails (retryable) and
the lifecycle task's own backoff takes over.

Idempotency: SCIM has no idempotency key. Every operation reads the user (by the id Portal
stored, else `userName eq`, else `externalId eq`) and the groups first and sends only what
differs, so a re-delivered task finds its own effect and sends nothing; two deliveries creating
at once meet the target's 409 (uniqueness) and the second converges on the first one's user.
A user holding the userName with another externalId is someone else's: refused, not taken over.

The protocol is done by scim2-client (requests and answers as scim2-models objects, validated);
this module adds the transport on `requests` (`RequestsScimClient`: the project's one HTTP stack,
with the retry rules above), the mapping and the read-then-write logic.
"""

from __future__ import annotations

import email.utils
import threading
import time
from contextlib import contextmanager
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from django.core.exceptions import ValidationError
from pydantic import ValidationError as PydanticValidationError
from scim2_client import SCIMClientException
from scim2_client.client import BaseSyncSCIMClient
from scim2_models import (
    EnterpriseUser,
    Group,
    GroupMember,
    ListResponse,
    PatchOp,
    PatchOperation,
    ResourceType,
    SCIMException,
    ScimProvider,
    SearchRequest,
    ServiceProviderConfig,
    User,
)

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
from accounts.connectors.webhook import http_session

DEFAULT_TIMEOUT = 10
DEFAULT_MAX_RETRIES = 3
DEFAULT_MAX_RETRY_WAIT = 10
DISCOVERY_TTL = 60.0
RETRY_STATUSES = {429, 500, 502, 503, 504}
ON_REVOKE = ("deactivate", "delete")
USER_NAME_FROM = ("email", "employee_number")
USER_AGENT = "Portal-SCIM/1"
SCIM_JSON = "application/scim+json"
KNOWN_SETTINGS = {
    "url",
    "token",
    "token_env",
    "groups",
    "on_revoke",
    "user_name_from",
    "timeout",
    "max_retries",
    "max_retry_wait",
    "ca_file",
}

UserModel = User[EnterpriseUser]
GROUP_ID_PREFIX = "id:"


class RequestsScimClient(BaseSyncSCIMClient):
    """scim2-client's synchronous client over a `requests` session (the library ships httpx2 and
    WSGI engines; Portal's other connectors use requests, so this is the engine it lacks).

    `request` joins the endpoint to the base URL, sends JSON as `application/scim+json` with the
    bearer token, and re-sends an answer of 429/5xx as the module docstring says. A network failure
    is a retryable ConnectorError.
    """

    def __init__(self, *, base_url: str, token: str, timeout: float, verify, max_retries: int, max_wait: float, **kw):
        super().__init__(**kw)
        self.base_url = base_url.rstrip("/") + "/"
        self.token, self.timeout, self.verify = token, timeout, verify
        self.max_retries, self.max_wait = max_retries, max_wait
        self.sent: list[tuple[str, str, int]] = []  # (method, url, status) of every request, for messages

    def _url(self, endpoint: str) -> str:
        return urljoin(self.base_url, endpoint.lstrip("/"))

    def _stays_under_base_url(self, endpoint: str) -> bool:
        url = self._url(endpoint)
        base = urlsplit(self.base_url)
        target = urlsplit(url)
        return (target.scheme, target.netloc) == (base.scheme, base.netloc) and target.path.startswith(base.path)

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        import json

        full = self._url(url)
        headers = {"Authorization": f"Bearer {self.token}", "Accept": SCIM_JSON, "User-Agent": USER_AGENT}
        headers.update(kwargs.pop("headers", None) or {})
        if "json" in kwargs:
            kwargs["data"] = json.dumps(kwargs.pop("json")).encode()
            headers["Content-Type"] = SCIM_JSON
        waited = 0.0
        for attempt in range(self.max_retries + 1):
            try:
                response = http_session().request(
                    method,
                    full,
                    headers=headers,
                    timeout=self.timeout,
                    allow_redirects=False,
                    verify=self.verify,
                    **kwargs,
                )
            except requests.Timeout as exc:
                raise ConnectorError(f"SCIM {method} {full} got no answer within {self.timeout} s.") from exc
            except requests.RequestException as exc:
                raise ConnectorError(f"SCIM service {full} is unreachable: {_reason(exc)}") from exc
            self.sent.append((method, full, response.status_code))
            if response.status_code not in RETRY_STATUSES or attempt == self.max_retries:
                return response
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            wait = min(2.0**attempt * 0.25, 2.0) if wait is None else wait
            if waited + wait > self.max_wait:
                raise ConnectorError(
                    f"SCIM {method} {full} answered HTTP {response.status_code} and asks to wait {wait:g} s "
                    f"(Retry-After), more than max_retry_wait ({self.max_wait:g} s) allows: trying again later."
                )
            time.sleep(wait)
            waited += wait
        return response  # pragma: no cover - the loop returns


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds a `Retry-After` header asks to wait (delta-seconds or an HTTP date); None when absent or junk."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


_discovery: dict[str, tuple[float, ServiceProviderConfig]] = {}
_discovery_lock = threading.Lock()


def forget_discovery() -> None:
    """Drop the kept ServiceProviderConfigs (tests; a target whose config changed)."""
    with _discovery_lock:
        _discovery.clear()


def _filter_value(value: str) -> str:
    """A string for a SCIM filter, quoted as a JSON string (RFC 7644 §3.4.2.2)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@register_connector
class ScimConnector(Connector):
    """Users and group membership in a SCIM 2.0 service provider, through scim2-client."""

    kind = "scim"
    secret_fields = ("token",)
    supports_forget = True
    example_config = {
        "url": "https://app.example.com/scim/v2",
        "token_env": "PORTAL_APP_SCIM_TOKEN",
        "groups": {"admin": "Admins"},
    }

    # --- configuration -------------------------------------------------------------------------
    @classmethod
    def validate_config(cls, config: dict, *, access_levels: list[str] | None = None) -> None:
        super().validate_config(config, access_levels=access_levels)
        errors: list[ValidationError] = []
        unknown = sorted(set(config) - KNOWN_SETTINGS)
        if unknown:
            errors.append(
                bad_setting(
                    ", ".join(unknown), f"not a SCIM setting; the settings are {', '.join(sorted(KNOWN_SETTINGS))}."
                )
            )
        url = config.get("url")
        if not url:
            errors.append(missing_setting("url", "the SCIM base URL, e.g. https://app.example.com/scim/v2"))
        elif not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            errors.append(bad_setting("url", "must be an http:// or https:// URL with a host."))
        elif urlsplit(url).query or urlsplit(url).fragment:
            errors.append(bad_setting("url", "must be the base URL only, without ?query or #fragment."))
        errors.extend(check_secret_setting(config, "token", "the bearer token the application issued to Portal"))
        errors.extend(cls._check_groups(config.get("groups"), access_levels))
        if config.get("on_revoke", ON_REVOKE[0]) not in ON_REVOKE:
            errors.append(bad_setting("on_revoke", f"must be one of {', '.join(ON_REVOKE)}."))
        if config.get("user_name_from", USER_NAME_FROM[0]) not in USER_NAME_FROM:
            errors.append(bad_setting("user_name_from", f"must be one of {', '.join(USER_NAME_FROM)}."))
        retries = config.get("max_retries")
        if retries is not None and (
            isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10
        ):
            errors.append(bad_setting("max_retries", "must be a whole number from 0 to 10."))
        wait = config.get("max_retry_wait")
        if wait is not None and (isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait <= 120):
            errors.append(bad_setting("max_retry_wait", "must be a number of seconds from 0 to 120."))
        if "ca_file" in config and not isinstance(config["ca_file"], str):
            errors.append(bad_setting("ca_file", "must be the path of a PEM file."))
        errors.extend(check_timeout_setting(config))
        if errors:
            raise ValidationError(errors)

    @staticmethod
    def _check_groups(groups, access_levels) -> list[ValidationError]:
        errors = []
        if groups is None:
            groups = {}
        elif not isinstance(groups, dict):
            return [bad_setting("groups", 'must map access levels to remote groups, e.g. {"admin": "Admins"}.')]
        for level, group in groups.items():
            if not isinstance(group, str) or not group.strip() or group.strip() == GROUP_ID_PREFIX:
                errors.append(bad_setting(f"groups.{level}", 'must be a group\'s displayName, or "id:" and its id.'))
        if access_levels is not None:
            extra = [level for level in groups if level not in access_levels]
            if extra:
                errors.append(
                    bad_setting("groups", f"names level(s) the application does not have: {', '.join(extra)}.")
                )
            without = [level for level in access_levels if level not in groups]
            if len(without) > 1:
                errors.append(
                    bad_setting(
                        "groups",
                        f"has no group for the levels {', '.join(without)}: give each of them but one a group, "
                        "or Portal cannot tell them apart in the application.",
                    )
                )
        return errors

    def check_connection(self) -> None:
        """Read the ServiceProviderConfig, check the token by a search, and that every level's group exists."""
        with self._session("checking the connection") as client:
            client.query(UserModel, query_parameters=SearchRequest(count=1))
            self._group_ids(client)

    # --- operations ------------------------------------------------------------------------------
    def provision(self, *, employee, level: str, idempotency_key: str) -> AccountState:
        return self._converge(employee, external_id="", level=level)

    def change_level(self, *, employee, external_id: str, level: str, idempotency_key: str) -> AccountState:
        return self._converge(employee, external_id=external_id, level=level)

    def revoke(self, *, employee, external_id: str, idempotency_key: str) -> AccountState:
        with self._session(f"revoking the account of {employee.employee_number}") as client:
            user = self._find(client, employee, external_id)
            if user is None:
                return AccountState(exists=False)
            self._set_membership(client, user.id, level=None)
            if self.config.get("on_revoke", ON_REVOKE[0]) == "delete":
                self._delete(client, user.id)
                return AccountState(exists=False, external_id=user.id)
            self._set_active(client, user, False)
            return AccountState(exists=True, active=False, level=None, external_id=user.id)

    def disable(self, *, employee, external_id: str, idempotency_key: str) -> AccountState:
        with self._session(f"disabling the account of {employee.employee_number}") as client:
            user = self._find(client, employee, external_id)
            if user is None:
                return AccountState(exists=False)
            self._set_active(client, user, False)
            return AccountState(exists=True, active=False, level=None, external_id=user.id)

    def forget(self, *, employee, external_id: str, idempotency_key: str) -> AccountState:
        """DELETE the user, found by the id Portal kept or by externalId (its name and email are purged)."""
        with self._session(f"forgetting {employee.employee_number}") as client:
            user = self._find(client, employee, external_id, by_user_name=False)
            if user is None:
                return AccountState(exists=False)
            self._set_membership(client, user.id, level=None)
            self._delete(client, user.id)
            return AccountState(exists=False)

    def read_state(self, *, employee, external_id: str) -> AccountState:
        with self._session(f"reading the account of {employee.employee_number}") as client:
            user = self._find(client, employee, external_id)
            if user is None:
                return AccountState(exists=False)
            return self._state(client, user)

    # --- the steps ----------------------------------------------------------------------------------
    def _converge(self, employee, *, external_id: str, level: str) -> AccountState:
        """The user exists, is current and active, and is in `level`'s group and no other of ours."""
        with self._session(f"provisioning {employee.employee_number} at level {level!r}") as client:
            groups = self._group_ids(client)
            if level not in self.application.access_levels and level not in groups:
                raise ConnectorError(f"{self.application.name} has no level {level!r}.", retryable=False)
            user = self._find(client, employee, external_id)
            user = self._create(client, employee) if user is None else self._update(client, user, employee)
            self._set_membership(client, user.id, level=level, groups=groups)
            return self._state(client, user, groups=groups)

    def user_name(self, employee) -> str:
        if self.config.get("user_name_from", USER_NAME_FROM[0]) == "employee_number":
            value = employee.employee_number
        else:
            value = employee.work_email
        if not value:
            raise ConnectorError(f"{employee} has no work email to use as the SCIM userName.", retryable=False)
        return value

    def _wanted(self, employee) -> dict[str, Any]:
        """The attributes Portal keeps in the target, as SCIM JSON (camelCase)."""
        given = employee.preferred_name or employee.first_name
        wanted = {
            "userName": self.user_name(employee),
            "externalId": employee.employee_number,
            "name": {
                "givenName": given,
                "familyName": employee.last_name,
                "formatted": f"{given} {employee.last_name}",
            },
            "displayName": f"{given} {employee.last_name}",
            "active": True,
        }
        if employee.work_email:
            wanted["emails"] = [{"value": employee.work_email, "type": "work", "primary": True}]
        if employee.title:
            wanted["title"] = employee.title
        return wanted

    def _create(self, client, employee):
        wanted = self._wanted(employee)
        try:
            return client.create(UserModel.model_validate(wanted))
        except SCIMException as exc:
            if exc.status != 409:
                raise
        # Another delivery created it a moment ago, or someone else holds this userName.
        user = self._search_one(client, "userName", wanted["userName"])
        if user is None:
            raise ConnectorError(
                f"{self._url}: userName {wanted['userName']} is taken (409) but no user with it can be found.",
                retryable=False,
            )
        self._check_owner(user, employee)
        return self._update(client, user, employee)

    def _update(self, client, user, employee):
        """Bring the user's attributes in line with the employee and make it active; only what differs."""
        current = user.model_dump()
        changes = {key: value for key, value in self._wanted(employee).items() if not _same(current.get(key), value)}
        if not changes:
            return user
        return self._write(client, UserModel, user, changes)

    def _set_active(self, client, user, active: bool) -> None:
        if bool(user.active) == active and user.active is not None:
            return
        self._write(client, UserModel, user, {"active": active})

    def _write(self, client, model, resource, changes: dict[str, Any]):
        """PATCH `changes` (replace) where the target supports it, else PUT the resource with them applied."""
        if self._patch_supported(client):
            operations = [PatchOperation(op="replace", path=key, value=value) for key, value in changes.items()]
            try:
                answer = client.modify(model, resource.id, PatchOp[model](operations=operations))
            except SCIMException as exc:
                if exc.status != 501:
                    raise
                self._patch = False  # the target said no despite its config: PUT from now on
            else:
                return answer if answer is not None else client.query(model, resource.id)
        body = {**resource.model_dump(), **changes}
        body.pop("meta", None)
        replacement = model.model_validate(body)
        replacement.meta = resource.meta  # its version, for If-Match
        return client.replace(replacement)

    def _delete(self, client, user_id: str) -> None:
        try:
            client.delete(UserModel, user_id)
        except SCIMException as exc:
            if exc.status != 404:  # gone already: done
                raise

    # --- groups -------------------------------------------------------------------------------------
    def _group_ids(self, client) -> dict[str, str]:
        """Level → remote group id; each group looked up by displayName (or given as "id:<id>")."""
        if self._groups is not None:
            return self._groups
        found, missing = {}, []
        for level, name in (self.config.get("groups") or {}).items():
            name = name.strip()
            if name.startswith(GROUP_ID_PREFIX):
                group_id = name[len(GROUP_ID_PREFIX) :].strip()
                try:
                    client.query(Group, group_id)
                except SCIMException as exc:
                    if exc.status != 404:
                        raise
                    missing.append(f"{name} (for {level})")
                    continue
                found[level] = group_id
                continue
            if not self._filter_supported(client):
                raise ConnectorError(
                    f"{self._url} does not support filtering (its ServiceProviderConfig says so), so the group "
                    f"“{name}” (for {level}) cannot be found by name: give it as “id:<the group's id>”.",
                    retryable=False,
                )
            group = self._search_one(client, "displayName", name, model=Group)
            if group is None:
                missing.append(f"{name} (for {level})")
            else:
                found[level] = group.id
        if missing:
            raise ConnectorError(
                f"These groups do not exist in {self.application.name}'s SCIM service {self._url}: "
                f"{'; '.join(missing)}. Create them there, or correct “groups”.",
                retryable=False,
            )
        self._groups = found
        return found

    def _set_membership(self, client, user_id: str, *, level: str | None, groups: dict | None = None) -> None:
        """`user_id` is a member of `level`'s group and of no other group of this application."""
        groups = self._group_ids(client) if groups is None else groups
        wanted_group = groups.get(level) if level is not None else None
        for group_id in dict.fromkeys(groups.values()):
            group = client.query(Group, group_id)
            member = user_id in {m.value for m in group.members or []}
            wanted = group_id == wanted_group
            if wanted and not member:
                self._change_members(client, group, user_id, add=True)
            elif member and not wanted:
                self._change_members(client, group, user_id, add=False)

    def _change_members(self, client, group, user_id: str, *, add: bool) -> None:
        if self._patch_supported(client):
            if add:
                operation = PatchOperation(op="add", path="members", value=[{"value": user_id}])
            else:
                operation = PatchOperation(op="remove", path=f"members[value eq {_filter_value(user_id)}]")
            try:
                client.modify(Group, group.id, PatchOp[Group](operations=[operation]))
                return
            except SCIMException as exc:
                if exc.status != 501:
                    raise
                self._patch = False
        members = [m for m in group.members or [] if m.value != user_id]
        if add:
            members.append(GroupMember(value=user_id))
        replacement = group.model_copy(update={"members": members})
        client.replace(replacement)

    def _state(self, client, user, *, groups: dict | None = None) -> AccountState:
        groups = self._group_ids(client) if groups is None else groups
        member_of = set()
        for group_id in dict.fromkeys(groups.values()):
            group = client.query(Group, group_id)
            if user.id in {m.value for m in group.members or []}:
                member_of.add(group_id)
        level = next((lvl for lvl, gid in groups.items() if gid in member_of), None)
        active = bool(user.active)
        if level is None and active:
            without = [lvl for lvl in self.application.access_levels if lvl not in groups]
            level = without[0] if len(without) == 1 else None
        return AccountState(exists=True, active=active and level is not None, level=level, external_id=user.id)

    # --- finding the user -----------------------------------------------------------------------------
    def _find(self, client, employee, external_id: str, *, by_user_name: bool = True):
        """The person's user: at the id Portal stored if it is still theirs, else by userName, else by externalId."""
        if external_id:
            try:
                user = client.query(UserModel, external_id)
            except SCIMException as exc:
                if exc.status != 404:
                    raise
            else:
                if user.external_id in (None, "", employee.employee_number):
                    return user
        if by_user_name:
            user = self._search_one(client, "userName", self.user_name(employee))
            if user is not None:
                self._check_owner(user, employee)
                return user
        return self._search_one(client, "externalId", employee.employee_number)

    def _check_owner(self, user, employee) -> None:
        if user.external_id not in (None, "", employee.employee_number):
            raise ConnectorError(
                f"{self._url}: the user {user.user_name} (id {user.id}) belongs to someone else "
                f"(externalId {user.external_id}, not {employee.employee_number}). Portal does not take it over.",
                retryable=False,
            )

    def _search_one(self, client, attribute: str, value: str, *, model=UserModel):
        if not self._filter_supported(client):
            return None
        answer = client.query(model, query_parameters=SearchRequest(filter=f"{attribute} eq {_filter_value(value)}"))
        resources = list(answer.resources or []) if isinstance(answer, ListResponse) else []
        if len(resources) > 1:
            ids = ", ".join(str(r.id) for r in resources)
            raise ConnectorError(
                f"{self._url}: {len(resources)} resources have {attribute} {value} ({ids}). Remove the duplicates.",
                retryable=False,
            )
        return resources[0] if resources else None

    # --- plumbing ---------------------------------------------------------------------------------------
    def __init__(self, application):
        super().__init__(application)
        self._groups: dict[str, str] | None = None
        self._patch: bool | None = None
        self._config_spc: ServiceProviderConfig | None = None

    @property
    def _url(self) -> str:
        return str(self.config.get("url", ""))

    def _patch_supported(self, client) -> bool:
        if self._patch is None:
            spc = self._config_spc
            self._patch = bool(spc and spc.patch and spc.patch.supported)
        return self._patch

    def _filter_supported(self, client) -> bool:
        spc = self._config_spc
        return bool(spc and spc.filter and spc.filter.supported)

    def _client(self) -> RequestsScimClient:
        self.require_valid_config()
        provider = ScimProvider(
            models=[User, EnterpriseUser, Group],
            resource_types=[ResourceType.from_resource(UserModel), ResourceType.from_resource(Group)],
        )
        return RequestsScimClient(
            base_url=self._url,
            token=self.secret("token"),
            timeout=self.config.get("timeout", DEFAULT_TIMEOUT),
            verify=self.config.get("ca_file") or True,
            max_retries=self.config.get("max_retries", DEFAULT_MAX_RETRIES),
            max_wait=self.config.get("max_retry_wait", DEFAULT_MAX_RETRY_WAIT),
            provider=provider,
        )

    def _discover(self, client) -> ServiceProviderConfig:
        """The target's ServiceProviderConfig: asked once per DISCOVERY_TTL seconds per process and URL."""
        now = time.monotonic()
        with _discovery_lock:
            kept = _discovery.get(self._url)
        if kept is not None and kept[0] > now:
            spc = kept[1]
        else:
            spc = client.query(ServiceProviderConfig)
            with _discovery_lock:
                _discovery[self._url] = (now + DISCOVERY_TTL, spc)
        client.provider = ScimProvider(
            models=[User, EnterpriseUser, Group],
            resource_types=[ResourceType.from_resource(UserModel), ResourceType.from_resource(Group)],
            config=spc,
        )
        return spc

    @contextmanager
    def _session(self, what: str):
        """A client that read the ServiceProviderConfig; every failure becomes ConnectorError in the target's words."""
        client = self._client()
        try:
            self._config_spc = self._discover(client)
            yield client
        except ConnectorError:
            raise
        except SCIMException as exc:
            status = exc.status
            if status == 401:
                reason = "refused Portal's bearer token (HTTP 401): check “token”"
            elif status == 403:
                reason = "refused: the token may not do this (HTTP 403)"
            else:
                reason = f"answered HTTP {status}" + (f" ({exc.scim_type})" if exc.scim_type else "")
            raise ConnectorError(
                f"SCIM service {self._url} {reason} while {what}: {exc.detail}",
                retryable=status in RETRY_STATUSES or status == 408,
            ) from None
        except SCIMClientException as exc:
            source = getattr(exc, "source", None)
            status = getattr(source, "status_code", None)
            answered = f" (HTTP {status})" if status else ""
            raise ConnectorError(
                f"SCIM service {self._url} answered something that is not SCIM{answered} while {what}: {exc}",
                retryable=status is None or status in RETRY_STATUSES,
            ) from None
        except PydanticValidationError as exc:
            first = exc.errors()[0] if exc.errors() else {}
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise ConnectorError(
                f"SCIM service {self._url} sent a resource that is not valid SCIM while {what}: "
                f"{where}: {first.get('msg', exc)}",
                retryable=False,
            ) from None
        finally:
            self._config_spc = None
            self._patch = None


def _same(current, wanted) -> bool:
    """Does the target's value already say what Portal wants? (Sub-attributes Portal does not set are ignored.)"""
    if isinstance(wanted, dict):
        return isinstance(current, dict) and all(_same(current.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, list):
        if not isinstance(current, list) or len(current) != len(wanted):
            return False
        return all(_same(c, w) for c, w in zip(current, wanted, strict=True))
    if isinstance(wanted, str) and isinstance(current, str):
        return current == wanted
    return current == wanted


def _reason(exc: Exception) -> str:
    from accounts.connectors.webhook import _reason as innermost

    return innermost(exc)
