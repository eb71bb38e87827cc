"""The LDAP connector: person entries and group membership in a directory (OpenLDAP, 389-ds, ...).

Config (`Application.connector_config`)::

    {
      "url": "ldap://ldap.example.com:389",          # or ldaps://
      "bind_dn": "cn=portal,dc=example,dc=com",
      "bind_password": "...",                         # or "bind_password_env": "NAME_OF_ENV_VAR"
      "users_dn": "ou=people,dc=example,dc=com",
      "groups_dn": "ou=groups,dc=example,dc=com",     # only needed for short group names
      "groups": {"user": "cn=grafana-users,ou=groups,dc=example,dc=com", "admin": "grafana-admins"},
      "use_starttls": false, "ca_file": "/etc/ssl/certs/ldap-ca.pem",   # optional TLS
      "timeout": 10,                                  # seconds, connect and each answer
      "on_revoke": "remove_membership",               # or "disable_entry" / "delete_entry"
      "uid_from": "email",                            # or "employee_number"
      "on_forget": "delete_entry"                     # or "scrub_entry" (the retention purge)
    }

Model in the directory:

- A person is an `inetOrgPerson` under `users_dn`, `uid=<local part of the work email>` (or
  the employee number), with cn, sn, givenName, mail and employeeNumber. It is found by
  `employeeNumber` (or by the DN Portal stored as `external_id`), so a renamed RDN still
  matches. The entry's DN is the `external_id` Portal keeps on the entitlement.
- Each access level is one `groupOfNames` (`member` holds the person's DN). Holding a level
  means being a member of that level's group and of no other group of this application.
  Groups must exist (`check_connection` says which do not). A group that would lose its last
  member gets the bind DN as placeholder member, as groupOfNames needs one.
- Disabled means `employeeType: disabled` on the entry (no ppolicy overlay needed; directory
  consumers filter on `(!(employeeType=disabled))`). Group memberships stay, so provisioning
  again re-enables the entry where it was. The entry is the person's: disabling it disables it
  for every application that shares the directory.
- `on_revoke`: "remove_membership" (default) leaves the entry, which other applications in the
  same directory may use; "disable_entry" also disables it; "delete_entry" deletes it (only
  for a directory this application has to itself).

- `forget` (after Portal's retention purge): "delete_entry" (default) takes the entry out of this
  application's groups and deletes it; "scrub_entry" keeps it (for a directory that must keep
  every entry) but renames it `uid=former-<employee number>`, replaces cn, sn, givenName and mail
  by the purged placeholders and marks it disabled. Either way the entry is found by employeeNumber,
  which Portal keeps. Groups of other applications that still name the old DN are not Portal's:
  the directory's referential-integrity overlay (refint) fixes them, where it runs.

Idempotency: every operation reads the entry and the groups first and changes only what
differs, so repeating it, with the same `idempotency_key` or not, changes nothing; races
between two deliveries are absorbed (entryAlreadyExists, attributeOrValueExists and
noSuchAttribute on our own change count as done). LDAP has no place to store the key.
Errors: ldap3 results and exceptions become `ConnectorError` with the server's own words.

Connections: each worker process keeps one bound connection per thread, directory and bind
identity (url, bind DN, password, TLS, timeout) and reuses it for every call, so a layoff's
revocations cost one connect and one bind per worker, not one per call. A kept connection
found dropped (server restart, firewall) is replaced and the call made once more on the new one
(safe: every operation reads first); one idle for over a minute is reopened rather than trusted.
`check_connection` always binds on a new connection, to test the settings as they are now.
"""

import hashlib
import logging
import os
import ssl
import threading
import time
from contextlib import contextmanager, suppress
from urllib.parse import urlsplit

import ldap3
from django.core.exceptions import ValidationError
from ldap3.core.exceptions import LDAPCommunicationError, LDAPException, LDAPInvalidDnError
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn, parse_dn

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

logger = logging.getLogger(__name__)

DISABLED = "disabled"
ON_REVOKE = ("remove_membership", "disable_entry", "delete_entry")
ON_FORGET = ("delete_entry", "scrub_entry")
UID_FROM = ("email", "employee_number")
DEFAULT_TIMEOUT = 10
PERSON_ATTRIBUTES = ["uid", "cn", "sn", "givenName", "mail", "employeeNumber", "employeeType"]
KNOWN_SETTINGS = {
    "url",
    "bind_dn",
    "bind_password",
    "bind_password_env",
    "users_dn",
    "groups_dn",
    "groups",
    "use_starttls",
    "ca_file",
    "timeout",
    "on_revoke",
    "uid_from",
    "on_forget",
}

# LDAP result codes (RFC 4511) this module acts on.
SUCCESS = 0
NO_SUCH_ATTRIBUTE = 16
ATTRIBUTE_OR_VALUE_EXISTS = 20
NO_SUCH_OBJECT = 32
OBJECT_CLASS_VIOLATION = 65
ENTRY_ALREADY_EXISTS = 68
# Outages and limits: trying again later may work. Anything else needs a change first.
RETRYABLE_RESULTS = {3, 11, 51, 52, 80}


def _is_dn(value) -> bool:
    if not isinstance(value, str) or "=" not in value:
        return False
    try:
        parse_dn(value)
    except LDAPInvalidDnError:
        return False
    return True


def _same_dn(a: str, b: str) -> bool:
    return a.replace(" ", "").lower() == b.replace(" ", "").lower()


@register_connector
class LdapConnector(Connector):
    """Entries and groupOfNames membership in an LDAP directory, through ldap3 (pure Python)."""

    kind = "ldap"
    secret_fields = ("bind_password",)
    supports_forget = True
    example_config = {
        "url": "ldap://ldap.example.com:389",
        "bind_dn": "cn=portal,dc=example,dc=com",
        "bind_password_env": "PORTAL_LDAP_PASSWORD",
        "users_dn": "ou=people,dc=example,dc=com",
        "groups_dn": "ou=groups,dc=example,dc=com",
        "groups": {"user": "cn=app-users,ou=groups,dc=example,dc=com", "admin": "app-admins"},
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
                    ", ".join(unknown), f"not an LDAP setting; the settings are {', '.join(sorted(KNOWN_SETTINGS))}."
                )
            )

        url = config.get("url")
        if not url:
            errors.append(missing_setting("url", "the server, e.g. ldap://ldap.example.com:389"))
        elif not isinstance(url, str) or urlsplit(url).scheme not in ("ldap", "ldaps") or not urlsplit(url).hostname:
            errors.append(bad_setting("url", "must look like ldap://host:port or ldaps://host:port."))
        else:
            try:
                urlsplit(url).port  # noqa: B018 - raises on a bad port
            except ValueError:
                errors.append(bad_setting("url", "has a port that is not a number between 0 and 65535."))

        for key, meaning in (
            ("bind_dn", "the DN Portal binds as, e.g. cn=portal,dc=example,dc=com"),
            ("users_dn", "where person entries live, e.g. ou=people,dc=example,dc=com"),
        ):
            if not config.get(key):
                errors.append(missing_setting(key, meaning))
            elif not _is_dn(config[key]):
                errors.append(bad_setting(key, "is not a valid DN."))
        errors.extend(check_secret_setting(config, "bind_password", "the bind DN's password"))
        groups_dn = config.get("groups_dn")
        if groups_dn is not None and not _is_dn(groups_dn):
            errors.append(bad_setting("groups_dn", "is not a valid DN."))

        groups = config.get("groups")
        if not groups:
            meaning = 'the group of each access level, e.g. {"user": "cn=app-users,..."}'
            errors.append(missing_setting("groups", meaning))
        elif not isinstance(groups, dict):
            errors.append(bad_setting("groups", 'must map each access level to a group, e.g. {"user": "cn=..."}.'))
        else:
            for level, group in groups.items():
                if not isinstance(group, str) or not group:
                    errors.append(bad_setting(f"groups.{level}", "must be a group DN or name."))
                elif "=" in group and not _is_dn(group):
                    errors.append(bad_setting(f"groups.{level}", "is not a valid DN."))
                elif "=" not in group and not groups_dn:
                    errors.append(bad_setting(f"groups.{level}", "is a short name, so “groups_dn” must be set."))
            if access_levels is not None:
                missing = [level for level in access_levels if level not in groups]
                extra = [level for level in groups if level not in access_levels]
                if missing:
                    errors.append(bad_setting("groups", f"has no group for the level(s) {', '.join(missing)}."))
                if extra:
                    reason = f"names level(s) the application does not have: {', '.join(extra)}."
                    errors.append(bad_setting("groups", reason))

        if "use_starttls" in config and not isinstance(config["use_starttls"], bool):
            errors.append(bad_setting("use_starttls", "must be true or false."))
        elif config.get("use_starttls") and isinstance(url, str) and url.startswith("ldaps:"):
            errors.append(bad_setting("use_starttls", "cannot be combined with an ldaps:// url (already TLS)."))
        if "ca_file" in config and not isinstance(config["ca_file"], str):
            errors.append(bad_setting("ca_file", "must be the path of a PEM file."))
        errors.extend(check_timeout_setting(config))
        if config.get("on_revoke", ON_REVOKE[0]) not in ON_REVOKE:
            errors.append(bad_setting("on_revoke", f"must be one of {', '.join(ON_REVOKE)}."))
        if config.get("on_forget", ON_FORGET[0]) not in ON_FORGET:
            errors.append(bad_setting("on_forget", f"must be one of {', '.join(ON_FORGET)}."))
        if config.get("uid_from", UID_FROM[0]) not in UID_FROM:
            errors.append(bad_setting("uid_from", f"must be one of {', '.join(UID_FROM)}."))
        if errors:
            raise ValidationError(errors)

    def check_connection(self) -> None:
        """Bind on a new connection (not the kept one: this checks the settings and the password as they
        are now), then check that `users_dn` and every level's group exist."""
        with self._fresh_connection() as conn:
            if self._read(conn, self.config["users_dn"], attributes=[]) is None:
                raise ConnectorError(
                    f"users_dn {self.config['users_dn']} does not exist on {self.url}.", retryable=False
                )
            missing = [dn for dn in self._groups().values() if self._read(conn, dn, attributes=[]) is None]
            if missing:
                raise ConnectorError(
                    f"These groups do not exist on {self.url}: {'; '.join(sorted(set(missing)))}.", retryable=False
                )

    # --- operations ------------------------------------------------------------------------------
    def provision(self, *, employee, level: str, idempotency_key: str) -> AccountState:
        return self._converge(employee, external_id="", level=level)

    def change_level(self, *, employee, external_id: str, level: str, idempotency_key: str) -> AccountState:
        return self._converge(employee, external_id=external_id, level=level)

    def revoke(self, *, employee, external_id: str, idempotency_key: str) -> AccountState:
        return self._session(self._revoke, employee, external_id)

    def _revoke(self, conn, employee, external_id: str) -> AccountState:
        on_revoke = self.config.get("on_revoke", ON_REVOKE[0])
        entry = self._find(conn, employee, external_id)
        if entry is None:
            return AccountState(exists=False)
        dn = entry["dn"]
        if on_revoke == "delete_entry":
            # Out of every group first: groupOfNames keeps DNs of deleted entries otherwise.
            self._set_membership(conn, dn, target_group=None)
            conn.delete(dn)
            self._check(conn, f"delete of {dn}", ok=(SUCCESS, NO_SUCH_OBJECT))
            return AccountState(exists=False)
        self._set_membership(conn, dn, target_group=None)
        if on_revoke == "disable_entry":
            self._set_disabled(conn, entry, True)
        # Not read back (two round trips fewer per revocation): the entry is there, in none of our groups.
        return AccountState(exists=True, active=False, level=None, external_id=dn)

    def disable(self, *, employee, external_id: str, idempotency_key: str) -> AccountState:
        return self._session(self._disable, employee, external_id)

    def _disable(self, conn, employee, external_id: str) -> AccountState:
        entry = self._find(conn, employee, external_id)
        if entry is None:
            return AccountState(exists=False)
        self._set_disabled(conn, entry, True)
        return self._state(conn, entry["dn"])

    def forget(self, *, employee, external_id: str, idempotency_key: str) -> AccountState:
        """Delete the person's entry, or scrub it (`on_forget`); see the module docstring."""
        return self._session(self._forget, employee, external_id)

    def _forget(self, conn, employee, external_id: str) -> AccountState:
        entry = self._find(conn, employee, external_id if _is_dn(external_id) else "")
        if entry is None:
            return AccountState(exists=False)
        dn = entry["dn"]
        self._set_membership(conn, dn, target_group=None)
        if self.config.get("on_forget", ON_FORGET[0]) == "delete_entry":
            conn.delete(dn)
            self._check(conn, f"delete of {dn}", ok=(SUCCESS, NO_SUCH_OBJECT))
            return AccountState(exists=False)
        changes = {
            name: [(ldap3.MODIFY_REPLACE, [value])]
            for name, value in self._person(employee).items()
            if _values(entry, name) != [value]
        }
        if changes:
            conn.modify(dn, changes)
            self._check(conn, f"scrubbing {dn}")
        self._set_disabled(conn, self._read(conn, dn) or entry, True)
        rdn = f"uid={escape_rdn('former-' + employee.employee_number.lower())}"
        if not _same_dn(dn.split(",", 1)[0], rdn):
            conn.modify_dn(dn, rdn, delete_old_dn=True)
            self._check(conn, f"renaming {dn} to {rdn}")
            dn = f"{rdn},{dn.split(',', 1)[1]}"
        return self._state(conn, dn)

    def read_state(self, *, employee, external_id: str) -> AccountState:
        return self._session(self._read_state, employee, external_id)

    def _read_state(self, conn, employee, external_id: str) -> AccountState:
        entry = self._find(conn, employee, external_id)
        return AccountState(exists=False) if entry is None else self._state(conn, entry["dn"])

    # --- the steps ----------------------------------------------------------------------------------
    def _converge(self, employee, *, external_id: str, level: str) -> AccountState:
        """The entry exists, is current and enabled, and is in `level`'s group and no other of ours."""
        return self._session(self._converge_on, employee, external_id, level)

    def _converge_on(self, conn, employee, external_id: str, level: str) -> AccountState:
        target_group = self._group_for(level)
        entry = self._find(conn, employee, external_id)
        if entry is None:
            dn = self._create(conn, employee)
        else:
            dn = entry["dn"]
            self._update(conn, entry, employee)
        self._set_membership(conn, dn, target_group=target_group)
        return self._state(conn, dn)

    def _person(self, employee) -> dict[str, str]:
        return {
            "cn": employee.full_name,
            "sn": employee.last_name,
            "givenName": employee.preferred_name or employee.first_name,
            "mail": employee.work_email,
            "employeeNumber": employee.employee_number,
        }

    def _uid(self, employee) -> str:
        if self.config.get("uid_from", UID_FROM[0]) == "employee_number":
            uid = employee.employee_number
        else:
            uid = (employee.work_email or "").split("@", 1)[0]
        if not uid:
            raise ConnectorError(f"{employee} has no work email to derive an LDAP uid from.", retryable=False)
        return uid

    def _create(self, conn, employee) -> str:
        uid = self._uid(employee)
        dn = f"uid={escape_rdn(uid)},{self.config['users_dn']}"
        conn.add(dn, ["top", "person", "organizationalPerson", "inetOrgPerson"], {"uid": uid, **self._person(employee)})
        if conn.result["result"] == ENTRY_ALREADY_EXISTS:
            # Another delivery created it a moment ago, or someone else holds this uid.
            other = self._read(conn, dn, attributes=["employeeNumber"])
            numbers = _values(other or {}, "employeeNumber")
            if employee.employee_number not in numbers:
                raise ConnectorError(
                    f"{dn} already exists on {self.url} for another person "
                    f"(employeeNumber {', '.join(numbers) or 'not set'}).",
                    retryable=False,
                )
            return dn
        self._check(conn, f"add of {dn}")
        return dn

    def _update(self, conn, entry: dict, employee) -> None:
        """Bring the entry's attributes in line with the employee and clear the disabled mark."""
        changes = {
            name: [(ldap3.MODIFY_REPLACE, [value])]
            for name, value in self._person(employee).items()
            if _values(entry, name) != [value]
        }
        if DISABLED in _values(entry, "employeeType"):
            changes["employeeType"] = [(ldap3.MODIFY_DELETE, [DISABLED])]
        if changes:
            conn.modify(entry["dn"], changes)
            self._check(conn, f"update of {entry['dn']}", ok=(SUCCESS, NO_SUCH_ATTRIBUTE))

    def _set_disabled(self, conn, entry: dict, disabled: bool) -> None:
        if (DISABLED in _values(entry, "employeeType")) == disabled:
            return
        operation = ldap3.MODIFY_ADD if disabled else ldap3.MODIFY_DELETE
        conn.modify(entry["dn"], {"employeeType": [(operation, [DISABLED])]})
        self._check(conn, f"disabling {entry['dn']}", ok=(SUCCESS, ATTRIBUTE_OR_VALUE_EXISTS, NO_SUCH_ATTRIBUTE))

    def _set_membership(self, conn, dn: str, *, target_group: str | None) -> None:
        """`dn` is a member of `target_group` and of no other group of this application."""
        groups = {group.lower(): group for group in self._groups().values()}.values()
        for group in groups:
            wanted = target_group is not None and _same_dn(group, target_group)
            member = self._is_member(conn, group, dn)
            if wanted and not member:
                conn.modify(group, {"member": [(ldap3.MODIFY_ADD, [dn])]})
                self._check(conn, f"adding {dn} to {group}", ok=(SUCCESS, ATTRIBUTE_OR_VALUE_EXISTS))
            elif member and not wanted:
                self._remove_member(conn, group, dn)

    def _remove_member(self, conn, group: str, dn: str) -> None:
        conn.modify(group, {"member": [(ldap3.MODIFY_DELETE, [dn])]})
        if conn.result["result"] == OBJECT_CLASS_VIOLATION:
            # groupOfNames must keep one member: leave the bind DN in as placeholder.
            placeholder = self.config["bind_dn"]
            conn.modify(group, {"member": [(ldap3.MODIFY_ADD, [placeholder]), (ldap3.MODIFY_DELETE, [dn])]})
        self._check(conn, f"removing {dn} from {group}", ok=(SUCCESS, NO_SUCH_ATTRIBUTE))

    def _is_member(self, conn, group: str, dn: str) -> bool:
        # The server compares DNs (distinguishedNameMatch), so case and spacing do not matter.
        found = conn.search(group, f"(member={escape_filter_chars(dn)})", ldap3.BASE, attributes=[])
        if conn.result["result"] == NO_SUCH_OBJECT:
            raise ConnectorError(f"Group {group} does not exist on {self.url}.", retryable=False)
        self._check(conn, f"reading group {group}")
        return bool(found and conn.response and any(r.get("type") == "searchResEntry" for r in conn.response))

    def _state(self, conn, dn: str) -> AccountState:
        entry = self._read(conn, dn)
        if entry is None:
            return AccountState(exists=False)
        level = next(
            (level for level, group in self._groups().items() if self._is_member(conn, group, dn)),
            None,
        )
        disabled = DISABLED in _values(entry, "employeeType")
        return AccountState(exists=True, active=level is not None and not disabled, level=level, external_id=dn)

    def _find(self, conn, employee, external_id: str) -> dict | None:
        """The person's entry: at `external_id` if it is still there, else by employeeNumber."""
        if external_id:
            entry = self._read(conn, external_id)
            if entry is not None:
                return entry
        number = escape_filter_chars(employee.employee_number)
        users_dn = self.config["users_dn"]
        conn.search(
            users_dn,
            f"(&(objectClass=inetOrgPerson)(employeeNumber={number}))",
            ldap3.SUBTREE,
            attributes=PERSON_ATTRIBUTES,
        )
        if conn.result["result"] == NO_SUCH_OBJECT:
            raise ConnectorError(f"users_dn {users_dn} does not exist on {self.url}.", retryable=False)
        self._check(conn, f"search under {users_dn}")
        entries = [_entry(r) for r in conn.response or [] if r.get("type") == "searchResEntry"]
        if len(entries) > 1:
            raise ConnectorError(
                f"{len(entries)} entries under {users_dn} have employeeNumber {employee.employee_number}: "
                f"{'; '.join(e['dn'] for e in entries)}. Remove the duplicates.",
                retryable=False,
            )
        return entries[0] if entries else None

    def _read(self, conn, dn: str, attributes=None) -> dict | None:
        attributes = PERSON_ATTRIBUTES if attributes is None else attributes
        conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=attributes)
        if conn.result["result"] == NO_SUCH_OBJECT:
            return None
        self._check(conn, f"read of {dn}")
        entries = [_entry(r) for r in conn.response or [] if r.get("type") == "searchResEntry"]
        return entries[0] if entries else None

    # --- plumbing -------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.config.get("url", "")

    def _groups(self) -> dict[str, str]:
        """Level → group DN, short names resolved under `groups_dn`."""
        groups_dn = self.config.get("groups_dn", "")
        return {
            level: group if "=" in group else f"cn={escape_rdn(group)},{groups_dn}"
            for level, group in (self.config.get("groups") or {}).items()
        }

    def _group_for(self, level: str) -> str:
        try:
            return self._groups()[level]
        except KeyError:
            raise ConnectorError(
                f"{self.application.name}: no LDAP group is configured for the level {level!r}.", retryable=False
            ) from None

    def _check(self, conn, what: str, *, ok: tuple[int, ...] = (SUCCESS,)) -> None:
        result = conn.result or {}
        code = result.get("result")
        if code in ok:
            return
        raise ConnectorError(
            f"LDAP {what} on {self.url} failed: {_describe(result)}", retryable=code in RETRYABLE_RESULTS
        )

    def _identity(self) -> tuple:
        """What a kept connection is for: the server, who binds (the password's digest, not the
        password) and how (TLS, timeout). Another identity gets a connection of its own."""
        secret = hashlib.sha256(self.secret("bind_password").encode()).hexdigest()
        return (
            self.url,
            self.config.get("bind_dn", ""),
            secret,
            bool(self.config.get("use_starttls")),
            self.config.get("ca_file"),
            self.config.get("timeout", DEFAULT_TIMEOUT),
        )

    def _session(self, operation, *args):
        """`operation(conn, *args)` on this thread's kept, bound connection for this directory and
        bind identity, opened (connect, bind) on first use; the result.

        The connection stays open for the next call unless the call broke it. A kept connection that
        turns out to be dropped (the server, a firewall or a restart closed it) is replaced and the
        operation runs once more on a new one: every operation reads before it changes anything, so
        running it again changes only what the first try did not. A new connection that fails is not
        tried again (the task's retry is), nor is a timeout (the server is slow, not gone).
        """
        self.require_valid_config()
        key = self._identity()
        kept = _take_kept(key)
        if kept is not None:
            try:
                return self._run(kept, key, operation, args, reused=True)
            except _DroppedConnection as exc:
                logger.info("LDAP connection to %s was dropped (%s); reconnecting once.", self.url, exc)
        return self._run(self._open(), key, operation, args, reused=False)

    def _run(self, conn, key: tuple, operation, args, *, reused: bool):
        """Call `operation` on `conn`; keep `conn` for the next call if it is still good, else close it.
        LDAP exceptions become ConnectorError (or `_DroppedConnection` for a kept one that died)."""
        keep = False
        try:
            result = operation(conn, *args)
            keep = True
            return result
        except ConnectorError:
            keep = not conn.closed  # the server answered (a refusal): the connection is fine
            raise
        except LDAPCommunicationError as exc:
            if reused and not isinstance(exc, TimeoutError):
                raise _DroppedConnection(str(exc)) from exc
            raise ConnectorError(f"LDAP server {self.url} stopped answering: {exc}") from exc
        except LDAPException as exc:
            raise ConnectorError(f"LDAP error from {self.url}: {exc}") from exc
        finally:
            if keep:
                _keep(key, conn)
            else:
                _close(conn)

    @contextmanager
    def _fresh_connection(self):
        """A new bound connection, closed afterwards (not kept); failures become ConnectorError."""
        self.require_valid_config()
        conn = self._open()
        try:
            yield conn
        except LDAPCommunicationError as exc:
            raise ConnectorError(f"LDAP server {self.url} stopped answering: {exc}") from exc
        except LDAPException as exc:
            raise ConnectorError(f"LDAP error from {self.url}: {exc}") from exc
        finally:
            _close(conn)

    def _open(self) -> ldap3.Connection:
        """Connect (StartTLS if set) and bind; every failure becomes ConnectorError with the server's words."""
        url, bind_dn = self.url, self.config.get("bind_dn", "")
        timeout = self.config.get("timeout", DEFAULT_TIMEOUT)
        starttls = bool(self.config.get("use_starttls"))
        tls = None
        if starttls or url.lower().startswith("ldaps:"):
            tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=self.config.get("ca_file"))
        try:
            server = ldap3.Server(url, get_info=ldap3.NONE, connect_timeout=timeout, tls=tls)
            conn = ldap3.Connection(
                server,
                user=bind_dn,
                password=self.secret("bind_password"),
                auto_bind=ldap3.AUTO_BIND_NONE,
                raise_exceptions=False,
                receive_timeout=timeout,
            )
        except LDAPException as exc:
            raise ConnectorError(f"LDAP settings for {url} are not usable: {exc}", retryable=False) from exc
        try:
            try:
                conn.open()
            except LDAPCommunicationError as exc:
                raise ConnectorError(f"LDAP server {url} is unreachable: {exc}") from exc
            if starttls and not conn.start_tls():
                raise ConnectorError(f"LDAP StartTLS with {url} failed: {_describe(conn.result)}")
            if not conn.bind():
                code = (conn.result or {}).get("result")
                raise ConnectorError(
                    f"LDAP bind to {url} as {bind_dn} failed: {_describe(conn.result)}",
                    retryable=code in RETRYABLE_RESULTS,
                )
        except LDAPCommunicationError as exc:
            _close(conn)
            raise ConnectorError(f"LDAP server {url} stopped answering: {exc}") from exc
        except LDAPException as exc:
            _close(conn)
            raise ConnectorError(f"LDAP error from {url}: {exc}") from exc
        except ConnectorError:
            _close(conn)
            raise
        return conn


# --- Connections kept between calls ----------------------------------------------------------------
# A connect and a bind cost more round trips than a revocation's own reads and changes, so each
# worker keeps one bound connection per directory and bind identity (`LdapConnector._identity`).
# Per thread (an ldap3 connection is not safe to share) and per process (a forked worker must not
# write into its parent's socket). One idle for longer than KEEP_IDLE_SECONDS is closed and opened
# again rather than trusted: servers and firewalls drop idle connections (a drop is caught anyway).
KEEP_IDLE_SECONDS = 60.0

_kept = threading.local()


class _DroppedConnection(Exception):
    """A kept connection turned out to be closed by the other side (the call is made again)."""


def _kept_connections() -> dict[tuple, tuple[ldap3.Connection, float]]:
    if getattr(_kept, "pid", None) != os.getpid():
        _kept.connections, _kept.pid = {}, os.getpid()
    return _kept.connections


def _take_kept(key: tuple) -> ldap3.Connection | None:
    """This thread's kept connection for `key`, taken out of the pool (None: open a new one)."""
    conn, last_used = _kept_connections().pop(key, (None, 0.0))
    if conn is not None and (conn.closed or time.monotonic() - last_used > KEEP_IDLE_SECONDS):
        _close(conn)
        return None
    return conn


def _keep(key: tuple, conn: ldap3.Connection) -> None:
    old, _ = _kept_connections().get(key, (None, 0.0))
    if old is not None and old is not conn:
        _close(old)
    _kept_connections()[key] = (conn, time.monotonic())


def _close(conn: ldap3.Connection) -> None:
    with suppress(LDAPException, OSError):
        conn.unbind()


def close_kept_connections() -> int:
    """Unbind and forget this thread's kept LDAP connections; how many there were."""
    connections = _kept_connections()
    count = len(connections)
    for conn, _ in connections.values():
        _close(conn)
    connections.clear()
    return count


def _entry(response: dict) -> dict:
    return {"dn": response["dn"], **(response.get("attributes") or {})}


def _values(entry: dict, name: str) -> list[str]:
    """An attribute's values as a list of strings, whatever case the server used for its name."""
    for key, value in entry.items():
        if key.lower() == name.lower() and key != "dn":
            if value is None:
                return []
            return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]
    return []


def _describe(result: dict | None) -> str:
    result = result or {}
    description = result.get("description") or f"result {result.get('result')}"
    message = (result.get("message") or "").strip()
    return f"{description} ({message})" if message else description
