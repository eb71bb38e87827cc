"""Access changes carried out in target systems through connectors.

The lifecycle engine's actions call these; each is idempotent and takes the task id as
`idempotency_key`. No database transaction is held open during a connector call (a slow
directory must not block the database); state moves by conditional updates instead:
`pending → active` on provisioning, `active → revoking → revoked` on revocation.
A manual connector raises `ManualActionRequired`; the person who does the work confirms it
with `entitlement_confirm_provisioned` / `entitlement_confirm_revoked`.
"""

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.connectors import connector_for
from accounts.models import (
    LIVE_ENTITLEMENT_STATUSES,
    Application,
    Employee,
    Entitlement,
    EntitlementSource,
    EntitlementStatus,
)
from portal.audit import audit_record
from portal.history import set_history_user
from portal.models import AuditEvent


def entitlement_plan(
    *,
    employee: Employee,
    application: Application,
    level: str,
    source: str = EntitlementSource.BIRTHRIGHT,
    acting_user=None,
    expires_at=None,
) -> Entitlement:
    """The employee's live entitlement to `application`, creating a `pending` one if there is none.

    Idempotent: an existing live entitlement (any level) is returned as it is.
    """
    existing = Entitlement.objects.filter(
        employee=employee, application=application, status__in=LIVE_ENTITLEMENT_STATUSES
    ).first()
    if existing is not None:
        return existing
    entitlement = Entitlement(
        employee=employee,
        application=application,
        level=level,
        source=source,
        status=EntitlementStatus.PENDING,
        expires_at=expires_at,
    )
    entitlement.full_clean(validate_constraints=False)
    set_history_user(entitlement, acting_user)
    try:
        with transaction.atomic():
            entitlement.save()
    except IntegrityError:
        return Entitlement.objects.get(employee=employee, application=application, status__in=LIVE_ENTITLEMENT_STATUSES)
    return entitlement


def _set_status(entitlement: Entitlement, acting_user, *, expected: tuple[str, ...], **fields) -> bool:
    """Conditional update with a history row; False when another worker moved it first."""
    with transaction.atomic():
        current = Entitlement.objects.select_for_update().get(pk=entitlement.pk)
        if current.status not in expected:
            return False
        for name, value in fields.items():
            setattr(current, name, value)
        set_history_user(current, acting_user)
        current.save(update_fields=list(fields))
    for name, value in fields.items():
        setattr(entitlement, name, value)
    return True


def entitlement_provision(*, entitlement: Entitlement, idempotency_key: str, acting_user=None) -> Entitlement:
    """Create the account in the target system and mark the entitlement active.

    Already active: returns at once. Raises ConnectorError (retry later) or
    ManualActionRequired (a person finishes it).
    """
    entitlement = Entitlement.objects.select_related("employee", "application").get(pk=entitlement.pk)
    if entitlement.status == EntitlementStatus.ACTIVE:
        return entitlement
    if entitlement.status != EntitlementStatus.PENDING:
        raise ValidationError(
            f"{entitlement} is {entitlement.get_status_display().lower()}; only pending access can be provisioned."
        )
    state = connector_for(entitlement.application).provision(
        employee=entitlement.employee, level=entitlement.level, idempotency_key=idempotency_key
    )
    return _mark_active(entitlement, acting_user, external_id=state.external_id, via=entitlement.application.connector)


def _mark_active(entitlement: Entitlement, acting_user, *, external_id: str, via: str) -> Entitlement:
    if _set_status(
        entitlement,
        acting_user,
        expected=(EntitlementStatus.PENDING,),
        status=EntitlementStatus.ACTIVE,
        granted_at=timezone.now(),
        external_id=external_id or entitlement.external_id,
    ):
        audit_record(
            action=AuditEvent.Action.GRANT,
            target=entitlement,
            acting_user=acting_user,
            detail={
                "employee": entitlement.employee_id,
                "application": entitlement.application_id,
                "level": entitlement.level,
                "source": entitlement.source,
                "via": via,
            },
        )
    return entitlement


def entitlement_confirm_provisioned(*, entitlement: Entitlement, acting_user, external_id: str = "") -> Entitlement:
    """A person created the account by hand: mark the pending entitlement active. Idempotent."""
    entitlement = Entitlement.objects.select_related("employee", "application").get(pk=entitlement.pk)
    if entitlement.status == EntitlementStatus.ACTIVE:
        return entitlement
    return _mark_active(entitlement, acting_user, external_id=external_id, via="manual")


def entitlement_deprovision(
    *, entitlement: Entitlement, idempotency_key: str, acting_user=None, reason: str = ""
) -> Entitlement:
    """Remove the account in the target system and mark the entitlement revoked (its seat returns).

    Already revoked: returns at once. A pending entitlement that was never provisioned is
    revoked without calling the target.
    """
    entitlement = Entitlement.objects.select_related("employee", "application").get(pk=entitlement.pk)
    if entitlement.status == EntitlementStatus.REVOKED:
        return entitlement
    if entitlement.status == EntitlementStatus.PENDING:
        return _mark_revoked(entitlement, acting_user, reason=reason or "never provisioned", via="none")
    _set_status(entitlement, acting_user, expected=(EntitlementStatus.ACTIVE,), status=EntitlementStatus.REVOKING)
    connector_for(entitlement.application).revoke(
        employee=entitlement.employee, external_id=entitlement.external_id, idempotency_key=idempotency_key
    )
    return _mark_revoked(entitlement, acting_user, reason=reason, via=entitlement.application.connector)


def _mark_revoked(entitlement: Entitlement, acting_user, *, reason: str, via: str) -> Entitlement:
    if _set_status(
        entitlement,
        acting_user,
        expected=(EntitlementStatus.PENDING, EntitlementStatus.ACTIVE, EntitlementStatus.REVOKING),
        status=EntitlementStatus.REVOKED,
        revoked_at=timezone.now(),
    ):
        audit_record(
            action=AuditEvent.Action.REVOKE,
            target=entitlement,
            acting_user=acting_user,
            detail={
                "employee": entitlement.employee_id,
                "application": entitlement.application_id,
                "reason": reason,
                "via": via,
            },
        )
    return entitlement


def entitlement_confirm_revoked(*, entitlement: Entitlement, acting_user, reason: str = "") -> Entitlement:
    """A person removed the account by hand: mark the entitlement revoked. Idempotent."""
    entitlement = Entitlement.objects.select_related("employee", "application").get(pk=entitlement.pk)
    if entitlement.status == EntitlementStatus.REVOKED:
        return entitlement
    return _mark_revoked(entitlement, acting_user, reason=reason, via="manual")


def entitlement_change_level(
    *, entitlement: Entitlement, level: str, idempotency_key: str, acting_user=None
) -> Entitlement:
    """Change the level of an active entitlement in the target system, then here. Idempotent."""
    entitlement = Entitlement.objects.select_related("employee", "application").get(pk=entitlement.pk)
    if level not in entitlement.application.access_levels:
        raise ValidationError(f"{entitlement.application} has no level {level!r}.")
    if entitlement.level == level:
        return entitlement
    if entitlement.status != EntitlementStatus.ACTIVE:
        raise ValidationError(f"{entitlement} is not active; its level cannot be changed.")
    connector_for(entitlement.application).change_level(
        employee=entitlement.employee,
        external_id=entitlement.external_id,
        level=level,
        idempotency_key=idempotency_key,
    )
    previous = entitlement.level
    if _set_status(entitlement, acting_user, expected=(EntitlementStatus.ACTIVE,), level=level):
        audit_record(
            action=AuditEvent.Action.GRANT,
            target=entitlement,
            acting_user=acting_user,
            detail={"event": "level_changed", "from": previous, "to": level},
        )
    return entitlement
