"""Saving and removing a helpdesk login's admin scope (`AdminScope`): checked, with history and an audit event."""

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import AdminScope
from accounts.scoping import scope_forget
from portal.audit import audit_record
from portal.groups import AUDITOR, IT_ADMIN, IT_HELPDESK
from portal.history import set_history_user
from portal.models import AuditEvent


def admin_scope_check(*, user, departments, locations) -> None:
    """Refuse a scope that would be meaningless or wrong, with a sentence per field.

    A scope names at least one department or location (to lift the restriction, remove the scope);
    it is given to an IT helpdesk login only: an IT admin, an auditor or a superuser is never scoped.
    """
    errors = {}
    if not list(departments) and not list(locations):
        errors["__all__"] = (
            "Choose at least one department or location. To lift the restriction, delete the scope instead."
        )
    if user is not None:
        groups = set(user.groups.values_list("name", flat=True))
        if user.is_superuser or groups & {IT_ADMIN, AUDITOR}:
            errors["user"] = (
                f"{user.get_username()} is an IT admin, an auditor or a superuser: they are never scoped. "
                "Scope IT helpdesk logins only."
            )
        elif IT_HELPDESK not in groups or not user.is_staff:
            errors["user"] = f"{user.get_username()} is not an IT helpdesk login (staff, in the IT helpdesk group)."
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def admin_scope_save(*, scope: AdminScope, departments, locations, acting_user) -> AdminScope:
    """Create or change `scope` with exactly these departments and locations (after `admin_scope_check`),
    with a history row naming `acting_user` and an `admin_scope_saved` audit event listing them."""
    departments, locations = list(departments), list(locations)
    admin_scope_check(user=scope.user if scope.user_id else None, departments=departments, locations=locations)
    scope.full_clean(exclude=["departments", "locations"])
    created = scope.pk is None
    set_history_user(scope, acting_user)
    scope.save()
    scope.departments.set(departments)
    scope.locations.set(locations)
    scope_forget(scope.user)
    audit_record(
        action=AuditEvent.Action.ADMIN_SCOPE_SAVED,
        target=scope,
        acting_user=acting_user,
        detail={
            "created": created,
            "user": scope.user.get_username(),
            "departments": sorted(d.name for d in departments),
            "locations": sorted(loc.name for loc in locations),
        },
    )
    return scope


@transaction.atomic
def admin_scope_remove(*, scope: AdminScope, acting_user) -> None:
    """Delete `scope` (its login is no longer restricted), with a history row and an `admin_scope_removed` event."""
    audit_record(
        action=AuditEvent.Action.ADMIN_SCOPE_REMOVED,
        target=scope,
        acting_user=acting_user,
        detail={"user": scope.user.get_username()},
    )
    set_history_user(scope, acting_user)
    scope.delete()
    scope_forget(scope.user)
