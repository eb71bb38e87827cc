"""The write path of entitlements recorded by hand: grant and revoke, with no call to a target system.

Access changed through a connector (plan, provision, deprovision, level changes and their manual
confirmations) is `provisioning`. Both keep one live entitlement per person and application.
"""

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.event_data import entitlement_data
from accounts.models import (
    LIVE_ENTITLEMENT_STATUSES,
    Application,
    Employee,
    EmployeeStatus,
    Entitlement,
    EntitlementSource,
    EntitlementStatus,
)
from portal.audit import audit_record
from portal.events import event_emit
from portal.history import set_history_user
from portal.models import AuditEvent, EventType


def _live_entitlement(*, employee: Employee, application: Application) -> Entitlement | None:
    return (
        Entitlement.objects.select_for_update()
        .filter(employee=employee, application=application, status__in=LIVE_ENTITLEMENT_STATUSES)
        .first()
    )


def _existing_grant_result(existing: Entitlement, *, employee: Employee, application: Application, level: str):
    """What a repeated grant answers when a live entitlement already exists: the same row, or why not."""
    if existing.status == EntitlementStatus.REVOKING:
        raise ValidationError(
            f"{employee.full_name}'s access to {application.name} is being revoked; "
            "grant it again once the revocation has finished."
        )
    if existing.level != level:
        raise ValidationError(
            f"{employee.full_name} already holds {application.name} at level {existing.level!r}; "
            "change the level instead of granting again."
        )
    return existing


@transaction.atomic
def entitlement_grant(
    *,
    employee: Employee,
    application: Application,
    level: str,
    acting_user,
    source: str = EntitlementSource.MANUAL,
    expires_at=None,
) -> Entitlement:
    """Record that `employee` holds `application` at `level` (active now).

    Idempotent: if the employee already holds a live (pending or active) entitlement to the
    application at the same level it is returned unchanged, with no new history or audit row;
    at another level, or while it is being revoked, a clear error. A terminated employee is refused.

    The employee row is locked first, so concurrent grants for one person run one after the
    other and a termination committed meanwhile is seen. Should a writer that bypasses this
    service insert the same live entitlement concurrently, the unique constraint's error is
    turned into the same idempotent answer.
    """
    try:
        locked = Employee.objects.select_for_update(no_key=True).only("pk", "status").get(pk=employee.pk)
    except Employee.DoesNotExist:
        raise ValidationError(f"{employee.full_name} no longer exists.")
    if locked.status == EmployeeStatus.TERMINATED:
        raise ValidationError(f"{employee.full_name} is terminated and cannot be granted access.")
    existing = _live_entitlement(employee=employee, application=application)
    if existing is not None:
        return _existing_grant_result(existing, employee=employee, application=application, level=level)
    _refuse_sod_conflict(employee=employee, application=application, level=level)
    entitlement = Entitlement(
        employee=employee,
        application=application,
        level=level,
        source=source,
        status=EntitlementStatus.ACTIVE,
        granted_at=timezone.now(),
        expires_at=expires_at,
    )
    entitlement.full_clean()
    set_history_user(entitlement, acting_user)
    try:
        with transaction.atomic():
            entitlement.save()
    except IntegrityError:
        existing = _live_entitlement(employee=employee, application=application)
        if existing is None:
            raise
        return _existing_grant_result(existing, employee=employee, application=application, level=level)
    audit_record(
        action=AuditEvent.Action.GRANT,
        target=entitlement,
        acting_user=acting_user,
        detail={"employee": employee.pk, "application": application.pk, "level": level, "source": source},
    )
    event_emit(event_type=EventType.ENTITLEMENT_GRANTED, data=lambda: entitlement_data(entitlement, via="manual"))
    return entitlement


def _refuse_sod_conflict(*, employee: Employee, application: Application, level: str) -> None:
    """A grant by hand that would break a separation-of-duties rule no exception allows is refused, as the
    engine refuses it: nothing is written, and the message says what to do instead."""
    from accounts.services.sod import sod_conflicts_for_grant

    blocking = [
        c
        for c in sod_conflicts_for_grant(employee=employee, application_id=application.pk, level=level)
        if not c.excepted
    ]
    if blocking:
        raise ValidationError(
            f"Not granted: {employee.full_name} would hold a separation-of-duties conflict. "
            + " ".join(c.sentence for c in blocking)
            + " Ask for it through an access request (the rule's control owner decides), or add an exception "
            "for this person first (Separation of duties exceptions, in the admin)."
        )


@transaction.atomic
def entitlement_revoke(*, entitlement: Entitlement, acting_user, reason: str = "") -> Entitlement:
    """Mark an entitlement revoked now. Idempotent: a revoked entitlement is returned unchanged."""
    entitlement = Entitlement.objects.select_for_update().get(pk=entitlement.pk)
    if entitlement.status == EntitlementStatus.REVOKED:
        return entitlement
    entitlement.status = EntitlementStatus.REVOKED
    entitlement.revoked_at = timezone.now()
    set_history_user(entitlement, acting_user)
    entitlement.save(update_fields=["status", "revoked_at"])
    audit_record(
        action=AuditEvent.Action.REVOKE,
        target=entitlement,
        acting_user=acting_user,
        detail={"employee": entitlement.employee_id, "application": entitlement.application_id, "reason": reason},
    )
    event_emit(
        event_type=EventType.ENTITLEMENT_REVOKED,
        data=lambda: entitlement_data(entitlement, reason=reason, via="manual"),
    )
    return entitlement
