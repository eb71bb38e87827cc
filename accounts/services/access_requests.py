"""Access requests: opening one with its approval chain, the requester withdrawing it, and a leaver's closed.

Every refusal is a `ValidationError` naming the field (a dict) or the reason; nothing is written
then. The chain itself (who approves, each step's permission, the decisions and the request's
end) is `approval_steps`.
"""

import datetime

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm

from accounts.access import can_cancel_request
from accounts.models import (
    CANCEL_REQUEST_PERM,
    LIVE_ENTITLEMENT_STATUSES,
    AccessRequest,
    AccessRequestStatus,
    Application,
    ApprovalStep,
    ApprovalStepKind,
    Employee,
    EmployeeStatus,
    Entitlement,
    EntitlementStatus,
)
from accounts.services.approval_steps import (
    access_request_cancel_perms_revoke,
    access_request_finish,
    approval_chain_for,
    approval_step_activate,
    approval_steps_skip_open,
)
from accounts.services.sod import sod_conflicts_for_grant
from portal.audit import audit_record
from portal.history import set_history_user
from portal.models import AuditEvent


def expires_at_for(end_date: datetime.date | None) -> datetime.datetime | None:
    """Access with an end date lasts through that day (local time): it expires at the next midnight."""
    if end_date is None:
        return None
    return timezone.make_aware(datetime.datetime.combine(end_date + datetime.timedelta(days=1), datetime.time(0, 0)))


def latest_end_date(application: Application, today: datetime.date | None = None) -> datetime.date | None:
    """The last day a new request for `application` may run to, or None when it has no maximum."""
    if not application.max_access_days:
        return None
    return (today or timezone.localdate()) + datetime.timedelta(days=application.max_access_days)


def sod_control_steps(
    *, employee: Employee, application: Application, level: str, chain: list
) -> list[tuple[str, Employee, object]]:
    """The separation-of-duties part of a request's chain: (kind, control owner, rule) for each rule the
    grant would break without an exception. A `refuse` rule refuses the request (ValidationError naming
    the rule and its reason); so does a rule the requester owns the control of (nobody approves their
    own conflict). A control owner who already approves the request decides once; their approval
    covers the rule (the exception is made when the request is approved)."""
    conflicts = [
        c
        for c in sod_conflicts_for_grant(employee=employee, application_id=application.pk, level=level)
        if not c.excepted
    ]
    refused = [c for c in conflicts if c.refused]
    if refused:
        raise ValidationError(
            {
                "application": "Refused by separation of duties: "
                + " ".join(c.sentence for c in refused)
                + f" Ask {refused[0].rule.control_owner.full_name}, who owns this control, if you think it should "
                "be allowed."
            }
        )
    steps: list[tuple[str, Employee, object]] = []
    taken = {approver.pk for _kind, approver in chain}
    for conflict in conflicts:
        owner = conflict.rule.control_owner
        if owner.pk == employee.pk:
            raise ValidationError(
                {
                    "application": f"This request would break {conflict.rule}, whose control you own: "
                    "nobody approves their own conflict. Ask the IT helpdesk."
                }
            )
        if owner.status == EmployeeStatus.TERMINATED or owner.user_id is None:
            raise ValidationError(
                f"{owner.full_name}, who must approve the separation-of-duties conflict ({conflict.rule}), cannot "
                "sign in to Portal; ask the IT helpdesk to sort out the control owner."
            )
        if owner.pk in taken:
            continue
        taken.add(owner.pk)
        steps.append((ApprovalStepKind.CONTROL, owner, conflict.rule))
    return steps


def _validate_request(
    *, employee: Employee, application: Application, level: str, justification: str, end_date, today
) -> None:
    errors: dict[str, str] = {}
    if employee.status == EmployeeStatus.TERMINATED:
        raise ValidationError(f"{employee.full_name} is terminated; no access can be requested.")
    if not application.requestable:
        errors["application"] = f"{application.name} cannot be requested in self-service; ask the IT helpdesk."
    elif level not in application.access_levels:
        errors["level"] = (
            f"{application.name} has no level {level!r}; choose one of {', '.join(application.access_levels)}."
        )
    if not (justification or "").strip():
        errors["justification"] = "Say why you need this access: a justification is required."
    latest = latest_end_date(application, today)
    if end_date is not None and end_date < today:
        errors["end_date"] = f"The end date {end_date:%d %b %Y} is in the past; choose today or a later day."
    elif latest is not None and end_date is None:
        errors["end_date"] = (
            f"{application.name} is granted for at most {application.max_access_days} days: "
            f"give an end date no later than {latest:%d %b %Y}."
        )
    elif latest is not None and end_date > latest:
        errors["end_date"] = (
            f"{application.name} is granted for at most {application.max_access_days} days: "
            f"the latest end date is {latest:%d %b %Y}."
        )
    if errors:
        raise ValidationError(errors)
    held = (
        Entitlement.objects.filter(employee=employee, application=application, status__in=LIVE_ENTITLEMENT_STATUSES)
        .only("level", "status")
        .first()
    )
    if held is not None:
        what = "is being revoked" if held.status == EntitlementStatus.REVOKING else f"at level {held.level!r}"
        raise ValidationError({"application": f"You already have access to {application.name} ({what})."})
    pending = AccessRequest.objects.filter(
        employee=employee, application=application, status=AccessRequestStatus.PENDING
    ).first()
    if pending is not None:
        raise ValidationError(
            {"application": f"You already have a pending request for {application.name} (request #{pending.pk})."}
        )


@transaction.atomic
def access_request_create(
    *,
    employee: Employee,
    application: Application,
    level: str,
    justification: str,
    end_date: datetime.date | None = None,
    acting_user,
) -> AccessRequest:
    """Open an access request with its approval steps; with no approval needed it is approved at once.

    The requester's row is locked first, so a double submit makes one request (the second is
    refused as already pending).
    """
    today = timezone.localdate()
    employee = Employee.objects.select_for_update(of=("self",)).select_related("manager").get(pk=employee.pk)
    application = Application.objects.select_related("owner").get(pk=application.pk)
    _validate_request(
        employee=employee,
        application=application,
        level=level,
        justification=justification,
        end_date=end_date,
        today=today,
    )
    chain = approval_chain_for(employee=employee, application=application)
    controls = sod_control_steps(employee=employee, application=application, level=level, chain=chain)
    request = AccessRequest(
        employee=employee,
        application=application,
        level=level,
        justification=justification.strip(),
        end_date=end_date,
        requested_by=acting_user if getattr(acting_user, "pk", None) else None,
    )
    request.full_clean(validate_constraints=False)
    set_history_user(request, acting_user)
    try:
        with transaction.atomic():
            request.save()
    except IntegrityError:
        raise ValidationError({"application": f"You already have a pending request for {application.name}."})
    audit_record(
        action=AuditEvent.Action.REQUEST,
        target=request,
        acting_user=acting_user,
        detail={"employee": employee.pk, "application": application.pk, "level": level, "end_date": end_date},
    )
    if employee.user_id:  # the requester may withdraw it, also when IT filed it for them
        assign_perm(CANCEL_REQUEST_PERM, employee.user, request)
    steps = []
    links = [(kind, approver, None) for kind, approver in chain] + controls
    for order, (kind, approver, rule) in enumerate(links, start=1):
        step = ApprovalStep(request=request, order=order, kind=kind, approver=approver, sod_rule=rule)
        set_history_user(step, acting_user)
        step.save()
        steps.append(step)
    if steps:
        approval_step_activate(steps[0], acting_user)
    else:
        access_request_finish(request, acting_user, approved=True)
    return request


@transaction.atomic
def access_request_cancel(*, request: AccessRequest, acting_user) -> AccessRequest:
    """The requester withdraws their pending request: its open steps are skipped and nobody may decide them."""
    locked = (
        AccessRequest.objects.select_for_update(of=("self",))
        .select_related("application", "employee")
        .get(pk=request.pk)
    )
    if locked.status != AccessRequestStatus.PENDING:
        raise ValidationError(
            f"Request #{locked.pk} is {locked.get_status_display().lower()}; only a pending request can be cancelled."
        )
    if not can_cancel_request(acting_user, locked):
        raise PermissionDenied("Only the person who asked can cancel this request.")
    _cancel(locked, acting_user, comment="Cancelled by the requester.", reason="requester")
    return locked


def _cancel(request: AccessRequest, acting_user, *, comment: str, reason: str) -> None:
    """Cancel a locked pending request: its open steps skipped, every permission on it and them removed."""
    request.status = AccessRequestStatus.CANCELLED
    request.decided_at = timezone.now()
    set_history_user(request, acting_user)
    request.save(update_fields=["status", "decided_at"])
    approval_steps_skip_open(request, acting_user, comment=comment)
    access_request_cancel_perms_revoke(request)
    audit_record(
        action=AuditEvent.Action.ACCESS_REQUEST_CANCELLED,
        target=request,
        acting_user=acting_user,
        detail={"reason": reason, "application": request.application_id},
    )


@transaction.atomic
def access_requests_close_for_leaver(*, employee: Employee, acting_user) -> list[int]:
    """At a leaver's cut-off their own pending requests are cancelled (nobody is left to use the access),
    so approvers are not asked about them any more. Idempotent: returns the ids it cancelled now."""
    closed = []
    pending = AccessRequest.objects.select_for_update(of=("self",)).filter(
        employee=employee, status=AccessRequestStatus.PENDING
    )
    for request in pending.order_by("pk"):
        _cancel(request, acting_user, comment="Cancelled: the requester has left.", reason="leaver")
        closed.append(request.pk)
    return closed
