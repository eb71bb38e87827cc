"""Managers' change requests: a manager asks IT to move or off-board one of their direct reports; IT
confirms it (the move or leave run starts, and the request keeps it) or declines it with a reason.

Nothing about the person changes until IT confirms: the request is a proposal, with history.
"""

import datetime

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Department, Employee, EmployeeStatus, Role
from offboarding.flows.leaver import employee_terminate
from offboarding.flows.mover import mover_apply
from offboarding.models import ChangeRequest, ChangeRequestKind, ChangeRequestStatus
from portal.audit import audit_record
from portal.history import set_history_user
from portal.limits import text_limit_check, text_limit_error
from portal.mail import email_send_on_commit, portal_url
from portal.models import AuditEvent


@transaction.atomic
def change_request_create(
    *,
    manager: Employee,
    employee: Employee,
    kind: str,
    effective_date: datetime.date | None,
    reason: str,
    acting_user,
    new_role: Role | None = None,
    new_department: Department | None = None,
    new_manager: Employee | None = None,
) -> ChangeRequest:
    """Record the manager's request for IT. Refused (naming the field) for someone who is not their
    direct report, a terminated person, a day in the past, a leave before the start date, a move
    that changes nothing, or while the same kind of request is already waiting."""
    employee = Employee.objects.select_for_update(of=("self",)).select_related("role", "department").get(pk=employee.pk)
    if employee.manager_id != manager.pk:
        raise PermissionDenied("You can only ask for changes for your own direct reports.")
    if employee.status == EmployeeStatus.TERMINATED:
        raise ValidationError(f"{employee.full_name} is terminated; there is nothing to change.")
    reason = (reason or "").strip()
    errors: dict[str, str] = {}
    today = timezone.localdate()
    if kind not in ChangeRequestKind.values:
        raise ValidationError({"kind": "Choose a move or a leave."})
    if effective_date is None:
        errors["effective_date"] = "Give the day." if kind == ChangeRequestKind.MOVE else "Give the last day of work."
    elif effective_date < today:
        errors["effective_date"] = f"{effective_date:%d %b %Y} is in the past; choose today or a later day."
    elif kind == ChangeRequestKind.LEAVE and effective_date < employee.start_date:
        errors["effective_date"] = f"The last day is before {employee.full_name}'s start date ({employee.start_date})."
    if not reason:
        errors["reason"] = "Give IT the reason."
    elif too_long := text_limit_error(ChangeRequest, "reason", reason):
        errors["reason"] = too_long
    if kind == ChangeRequestKind.MOVE:
        changes = [
            new_role is not None and new_role.pk != employee.role_id,
            new_department is not None and new_department.pk != employee.department_id,
            new_manager is not None and new_manager.pk != employee.manager_id,
        ]
        if new_manager is not None and new_manager.pk == employee.pk:
            errors["new_manager"] = "A person cannot be their own manager."
        elif new_manager is not None and new_manager.status == EmployeeStatus.TERMINATED:
            errors["new_manager"] = f"{new_manager.full_name} is terminated."
        elif not any(changes):
            errors["new_role"] = "Choose a new role, department or manager that differs from today's."
    else:
        new_role = new_department = new_manager = None
    if errors:
        raise ValidationError(errors)
    request = ChangeRequest(
        employee=employee,
        kind=kind,
        requested_by=manager,
        new_role=new_role,
        new_department=new_department,
        new_manager=new_manager,
        effective_date=effective_date,
        reason=reason,
    )
    set_history_user(request, acting_user)
    try:
        with transaction.atomic():
            request.save()
    except IntegrityError:
        raise ValidationError(
            f"A {ChangeRequestKind(kind).label.split(' (')[0].lower()} request for {employee.full_name} is already "
            "waiting for IT."
        )
    audit_record(
        action=AuditEvent.Action.CHANGE_REQUESTED,
        target=request,
        acting_user=acting_user,
        detail={"kind": kind, "employee": employee.pk, "effective_date": effective_date},
    )
    email_send_on_commit(
        template="change_request_created",
        to=[settings.IT_TEAM_EMAIL],
        context={"request": request, "url": portal_url("admin:offboarding_changerequest_change", request.pk)},
    )
    return request


def _lock_pending(request: ChangeRequest) -> ChangeRequest:
    locked = (
        ChangeRequest.objects.select_for_update(of=("self",))
        .select_related("employee", "requested_by", "new_role", "new_department", "new_manager")
        .get(pk=request.pk)
    )
    if locked.status != ChangeRequestStatus.PENDING:
        raise ValidationError(f"{locked} is {locked.get_status_display().lower()}; it cannot be decided again.")
    return locked


def _tell_manager(request: ChangeRequest) -> None:
    email_send_on_commit(
        template="change_request_decided",
        to=[request.requested_by.work_email],
        context={"request": request, "url": portal_url("offboarding:team_member", request.employee_id)},
    )


@transaction.atomic
def change_request_confirm(*, request: ChangeRequest, acting_user) -> ChangeRequest:
    """IT carries out the request: a move run with the new role, department or manager, or a leave run."""
    locked = _lock_pending(request)
    if locked.kind == ChangeRequestKind.LEAVE:
        run = employee_terminate(
            employee=locked.employee,
            last_day=locked.effective_date,
            acting_user=acting_user,
            reason=f"Requested by {locked.requested_by.full_name}: {locked.reason}",
        )
    else:
        changes = {}
        for field, value in (
            ("role", locked.new_role),
            ("department", locked.new_department),
            ("manager", locked.new_manager),
        ):
            if value is not None:
                changes[field] = value
        run = mover_apply(
            employee=locked.employee, changes=changes, acting_user=acting_user, effective_date=locked.effective_date
        )
    locked.status = ChangeRequestStatus.CONFIRMED
    locked.decided_by = acting_user if getattr(acting_user, "pk", None) else None
    locked.decided_at = timezone.now()
    locked.run = run
    set_history_user(locked, acting_user)
    locked.save(update_fields=["status", "decided_by", "decided_at", "run"])
    audit_record(
        action=AuditEvent.Action.CHANGE_CONFIRMED,
        target=locked,
        acting_user=acting_user,
        detail={"kind": locked.kind, "run": run.pk},
    )
    _tell_manager(locked)
    return locked


@transaction.atomic
def change_request_decline(*, request: ChangeRequest, note: str, acting_user) -> ChangeRequest:
    """IT does not carry out the request; the reason goes to the manager."""
    note = (note or "").strip()
    if not note:
        raise ValidationError({"decision_note": "Give the manager the reason for declining."})
    text_limit_check(ChangeRequest, "decision_note", note)
    locked = _lock_pending(request)
    locked.status = ChangeRequestStatus.DECLINED
    locked.decided_by = acting_user if getattr(acting_user, "pk", None) else None
    locked.decided_at = timezone.now()
    locked.decision_note = note
    set_history_user(locked, acting_user)
    locked.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
    audit_record(
        action=AuditEvent.Action.CHANGE_DECLINED,
        target=locked,
        acting_user=acting_user,
        detail={"kind": locked.kind, "note": note},
    )
    _tell_manager(locked)
    return locked
