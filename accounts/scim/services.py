"""The write path of SCIM connections and of what identity providers change on people and roles.

Connections: created with a token shown once (only its SHA-256 hash and prefix are kept), revoked,
authenticated. People and roles: each write locks the row, validates, saves with a history row naming
the connection's service user and writes a typed audit event, inside the SCIM request's transaction.
"""

import hashlib
import hmac
import re
import secrets

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import Department, Employee, Role, ScimConnection
from portal.audit import audit_record
from portal.history import set_history_user
from portal.models import AuditEvent

TOKEN_PREFIX_LENGTH = 8
TOKEN_RE = re.compile(r"^scim_([0-9a-f]{8})_([A-Za-z0-9_-]{20,100})$")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _service_username(name: str) -> str:
    base = f"scim-{slugify(name)[:120] or 'connection'}"
    User = get_user_model()
    username, n = base, 1
    while User.objects.filter(username=username).exists():
        n += 1
        username = f"{base}-{n}"
    return username


@transaction.atomic
def scim_connection_create(*, name: str, acting_user, username_domain: str = "") -> tuple[ScimConnection, str]:
    """Create a connection and its login-less service user; returns the connection and its token (shown once).

    The token is `scim_<prefix>_<secret>`; only its prefix and SHA-256 hash are stored, so nobody can
    read it back later: a lost token means a new connection (and revoking the old one).
    """
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the connection a name, e.g. Okta."})
    if ScimConnection.objects.filter(name__iexact=name).exists():
        raise ValidationError({"name": f"There is already a SCIM connection named {name}."})
    User = get_user_model()
    user = User(username=_service_username(name), is_active=False, first_name="SCIM", last_name=name[:150])
    user.set_unusable_password()  # it never signs in: it only names the connection in history and audit
    user.save()
    prefix = secrets.token_hex(TOKEN_PREFIX_LENGTH // 2)
    while ScimConnection.objects.filter(token_prefix=prefix).exists():
        prefix = secrets.token_hex(TOKEN_PREFIX_LENGTH // 2)
    token = f"scim_{prefix}_{secrets.token_urlsafe(32)}"
    connection = ScimConnection(
        name=name,
        token_prefix=prefix,
        token_hash=token_hash(token),
        service_user=user,
        username_domain=(username_domain or "").strip().lower(),
        created_by=acting_user if getattr(acting_user, "pk", None) else None,
    )
    connection.full_clean()
    set_history_user(connection, acting_user)
    connection.save()
    audit_record(
        action=AuditEvent.Action.SCIM_CONNECTION_CREATED,
        target=connection,
        acting_user=acting_user,
        detail={"token_prefix": prefix, "service_user": user.username},
    )
    return connection, token


@transaction.atomic
def scim_connection_revoke(*, connection: ScimConnection, acting_user) -> ScimConnection:
    """Refuse the connection's token from now on. Idempotent: a revoked connection stays as it is."""
    locked = ScimConnection.objects.select_for_update().get(pk=connection.pk)
    if locked.revoked_at is not None:
        return locked
    locked.revoked_at = timezone.now()
    set_history_user(locked, acting_user)
    locked.save(update_fields=["revoked_at"])
    audit_record(
        action=AuditEvent.Action.SCIM_CONNECTION_REVOKED,
        target=locked,
        acting_user=acting_user,
        detail={"token_prefix": locked.token_prefix},
    )
    return locked


def scim_connection_authenticate(token: str) -> tuple[ScimConnection | None, str]:
    """The live connection whose token this is, or None and why ("unknown", "revoked").

    Compared in constant time; `last_used_at` is updated at most once a minute (not one write per request).
    """
    match = TOKEN_RE.match(token or "")
    if not match:
        return None, "malformed"
    connection = ScimConnection.objects.select_related("service_user").filter(token_prefix=match.group(1)).first()
    if connection is None or not hmac.compare_digest(connection.token_hash, token_hash(token)):
        return None, "unknown"
    if connection.revoked_at is not None:
        return connection, "revoked"
    now = timezone.now()
    if connection.last_used_at is None or (now - connection.last_used_at).total_seconds() >= 60:
        ScimConnection.objects.filter(pk=connection.pk).update(last_used_at=now)  # a timestamp, not a change
        connection.last_used_at = now
    return connection, ""


def scim_token_refused(*, connection: ScimConnection | None, reason: str, address: str, prefix: str = "") -> None:
    """Record a refused bearer token in the audit log (its prefix at most, never the token)."""
    detail = {"reason": reason, "address": address, "token_prefix": prefix}
    if connection is not None:
        audit_record(action=AuditEvent.Action.SCIM_TOKEN_REFUSED, target=connection, detail=detail)
        return
    # No connection to point at: the event names the prefix it was shown. audit_record needs a saved
    # target, so this one event is written as audit_record would, with the connection model as type.
    AuditEvent.objects.create(
        action=AuditEvent.Action.SCIM_TOKEN_REFUSED,
        actor=None,
        actor_repr="anonymous",
        target_type=ScimConnection._meta.label,
        target_id="-",
        target_repr=f"unknown token {prefix or '(no prefix)'}"[:255],
        detail=detail,
    )


# --- People and roles, as identity providers change them --------------------------------------

DETAIL_FIELDS = (
    "first_name",
    "last_name",
    "preferred_name",
    "work_email",
    "title",
    "external_id",
    "scim_emails",
    "employee_number",
    "scim_removed_at",
    "scim_inactive",
)


@transaction.atomic
def employee_details_update(*, employee: Employee, changes: dict, acting_user, via: str) -> Employee:
    """Change the identity details an identity provider owns (names, emails, title, ids), with history and audit.

    Only `DETAIL_FIELDS`; role, department and manager change through a move, the status through the
    leaver flow. Validated (`full_clean`: unique work email and employee number), nothing written when
    nothing changes. The audit event names the fields changed, not their values.
    """
    unknown = sorted(set(changes) - set(DETAIL_FIELDS))
    if unknown:
        raise ValidationError(f"These fields cannot be changed here: {', '.join(unknown)}.")
    locked = Employee.objects.select_for_update(of=("self",)).get(pk=employee.pk)
    changed = [name for name, value in changes.items() if getattr(locked, name) != value]
    if not changed:
        return locked
    for name in changed:
        setattr(locked, name, changes[name])
    locked.full_clean()
    set_history_user(locked, acting_user)
    locked.save(update_fields=[*changed, "updated_at"])
    audit_record(
        action=AuditEvent.Action.EMPLOYEE_CHANGED,
        target=locked,
        acting_user=acting_user,
        detail={"fields": sorted(changed), "via": via},
    )
    return locked


def _unique_code(model, base: str, length: int) -> str:
    base = (base or "x")[:length]
    code, n = base, 1
    while model.objects.filter(code__iexact=code).exists():
        n += 1
        suffix = f"-{n}"
        code = f"{base[: length - len(suffix)]}{suffix}"
    return code


# No savepoint: it refuses (full_clean) before it writes, and the SCIM request's transaction is the unit.
@transaction.atomic(savepoint=False)
def department_for_name(*, name: str, acting_user) -> Department:
    """The department an identity provider names (by name or code, any case); a new name creates it, with history."""
    name = name.strip()
    found = Department.objects.filter(name__iexact=name).first() or Department.objects.filter(code__iexact=name).first()
    if found is not None:
        return found
    department = Department(name=name[:100], code=_unique_code(Department, slugify(name).upper(), 20))
    department.full_clean()
    set_history_user(department, acting_user)
    department.save()
    return department


@transaction.atomic
def role_create(*, name: str, acting_user, via: str, external_id: str = "") -> Role:
    """A new role named by an identity provider's group: no birthrights yet (IT adds them in the admin)."""
    name = (name or "").strip()
    role = Role(name=name, code=_unique_code(Role, slugify(name)[:50] or "role", 50), external_id=external_id)
    role.full_clean()
    set_history_user(role, acting_user)
    role.save()
    audit_record(action=AuditEvent.Action.ROLE_CREATED, target=role, acting_user=acting_user, detail={"via": via})
    return role


@transaction.atomic
def role_rename(*, role: Role, name: str, acting_user, external_id: str = "") -> Role:
    """Rename a role (and its group's external id) as its identity provider renamed the group, with history."""
    locked = Role.objects.select_for_update().get(pk=role.pk)
    if (locked.name, locked.external_id) == (name, external_id):
        return locked
    locked.name, locked.external_id = name, external_id
    locked.full_clean()
    set_history_user(locked, acting_user)
    locked.save(update_fields=["name", "external_id"])
    return locked


@transaction.atomic
def role_delete(*, role: Role, acting_user) -> None:
    """Delete a role an identity provider removed, refused (with the reason) while anyone is or was in it."""
    locked = Role.objects.select_for_update().get(pk=role.pk)
    people = Employee.objects.filter(role=locked).count()
    if people:
        raise ValidationError(
            f"The role {locked.name} is still held by {people} {'person' if people == 1 else 'people'} "
            "(former employees included, whose records keep it); remove them from the group, or let IT "
            "retire the role in the admin."
        )
    audit_record(action=AuditEvent.Action.DELETE, target=locked, acting_user=acting_user, detail={"via": "scim"})
    set_history_user(locked, acting_user)
    locked.delete()
