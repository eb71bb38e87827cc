"""Access requests, their approval chains and delegations: the write path of self-service access.

Public API (keyword-only; each takes `acting_user`, recorded in history and the audit log):

- `access_request_create(employee=, application=, level=, justification=, end_date=None, acting_user=)`:
  validates, builds the approval steps from the application's policy (none, manager, owner,
  manager then owner), opens the first one and grants its approver (and their delegates) the
  object permission `accounts.decide_approvalstep` on it.
- `access_request_cancel(request=, acting_user=)`: the requester withdraws a pending request.
- `approval_step_decide(step=, acting_user=, approve=, comment="")`: one decision, once; the
  permission is removed from everyone once the step is decided. The final approval enqueues
  `offboarding.tasks.access_request_fulfil` after commit (ids only), so the lifecycle engine
  provisions the entitlement through its connector; accounts imports nothing from offboarding.
- `delegation_create(...)` / `delegation_cancel(...)`: out-of-office delegation of approvals.
- `approval_steps_remind(now=None)` and `entitlements_notify_expiry(now=None)`: periodic.

Every refusal is a `ValidationError` naming the field (a dict) or the reason; nothing is written then.
Requests and steps are locked in one order (request, then its steps) so a decision, a second
decision and a cancellation racing on the same request run one after the other.
"""

import datetime

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from guardian.shortcuts import assign_perm

from accounts.access import can_cancel_request, can_decide_step, decides_twice, delegations_in_force
from accounts.models import (
    LIVE_ENTITLEMENT_STATUSES,
    AccessRequest,
    AccessRequestStatus,
    AccessRequestUserObjectPermission,
    Application,
    ApprovalDelegation,
    ApprovalPolicy,
    ApprovalStep,
    ApprovalStepKind,
    ApprovalStepStatus,
    ApprovalStepUserObjectPermission,
    Employee,
    EmployeeStatus,
    Entitlement,
    EntitlementStatus,
)
from portal.audit import audit_record
from portal.history import set_history_user
from portal.mail import email_send, email_send_on_commit, portal_url
from portal.models import AuditEvent
from portal.queue import enqueue_on_commit

DECIDE = "decide_approvalstep"
CANCEL = "cancel_accessrequest"
DEFAULTS = {"APPROVAL_REMINDER_DAYS": 2, "EXPIRY_NOTICE_DAYS": 3}


def access_setting(name: str) -> int:
    """A whole number of days from `settings.ACCESS_REQUESTS` (the defaults above when missing)."""
    return getattr(settings, "ACCESS_REQUESTS", {}).get(name, DEFAULTS[name])


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


# --- Creating and cancelling requests ---------------------------------------------------------


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


def _approver_chain(*, employee: Employee, application: Application) -> list[tuple[str, Employee]]:
    """(kind, approver) for each step the policy asks for. Nobody approves their own request, and a
    person who would decide twice (the manager who also owns the application) decides once."""
    policy = application.approval_policy
    kinds = {
        ApprovalPolicy.NONE: [],
        ApprovalPolicy.MANAGER: [ApprovalStepKind.MANAGER],
        ApprovalPolicy.OWNER: [ApprovalStepKind.OWNER],
        ApprovalPolicy.MANAGER_THEN_OWNER: [ApprovalStepKind.MANAGER, ApprovalStepKind.OWNER],
    }[policy]
    chain: list[tuple[str, Employee]] = []
    for kind in kinds:
        if kind == ApprovalStepKind.OWNER and application.owner_id and application.owner_id != employee.pk:
            approver = application.owner
        else:
            # A manager step, or an owner step for the owner's own request: their manager decides.
            approver = employee.manager
            if approver is None:
                raise ValidationError(
                    f"{application.name} needs your manager's approval, but you have no manager on record; "
                    "ask the IT helpdesk to set your manager."
                )
        if approver.status == EmployeeStatus.TERMINATED or approver.user_id is None:
            raise ValidationError(
                f"{approver.full_name}, who must approve this request, cannot sign in to Portal; "
                "ask the IT helpdesk to sort out the approver."
            )
        if any(existing.pk == approver.pk for _, existing in chain):
            continue
        chain.append((kind, approver))
    return chain


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
    chain = _approver_chain(employee=employee, application=application)
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
        assign_perm(f"accounts.{CANCEL}", employee.user, request)
    steps = []
    for order, (kind, approver) in enumerate(chain, start=1):
        step = ApprovalStep(request=request, order=order, kind=kind, approver=approver)
        set_history_user(step, acting_user)
        step.save()
        steps.append(step)
    if steps:
        _activate(steps[0], acting_user)
    else:
        _finish(request, acting_user, approved=True)
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
    _skip_open_steps(request, acting_user, comment=comment)
    _revoke_cancel_perms(request)
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


@transaction.atomic
def approval_steps_follow_manager(*, employee: Employee, acting_user) -> list[int]:
    """A mover has a new manager: the manager steps of their pending requests go to that manager.

    A pending step's permission moves with it (removed from the old manager and their delegates,
    granted to the new one and theirs); a waiting step simply waits on the new manager. Without a
    new manager, or one who cannot sign in, the steps stay where they are. Idempotent.
    """
    employee = Employee.objects.select_related("manager__user").get(pk=employee.pk)
    manager = employee.manager
    if manager is None or manager.user_id is None or manager.status == EmployeeStatus.TERMINATED:
        return []
    # Requests before their steps, the order every decision locks them in.
    list(
        AccessRequest.objects.select_for_update(of=("self",))
        .filter(employee=employee, status=AccessRequestStatus.PENDING)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    steps = (
        ApprovalStep.objects.select_for_update(of=("self",))
        .select_related("request__employee", "approver__user")
        .filter(
            request__employee=employee,
            request__status=AccessRequestStatus.PENDING,
            kind=ApprovalStepKind.MANAGER,
            status__in=[ApprovalStepStatus.PENDING, ApprovalStepStatus.WAITING],
        )
        .exclude(approver=manager)
        .order_by("pk")
    )
    moved = []
    for step in steps:
        previous = step.approver_id
        step.approver = manager
        set_history_user(step, acting_user)
        step.save(update_fields=["approver"])
        if step.status == ApprovalStepStatus.PENDING:
            _revoke_decide_perms(step)
            _grant_deciders(step)
        audit_record(
            action=AuditEvent.Action.APPROVAL_MOVED,
            target=step,
            acting_user=acting_user,
            detail={"from": previous, "to": manager.pk},
        )
        moved.append(step.pk)
    return moved


# --- Deciding steps ----------------------------------------------------------------------------


def _decider_users(step: ApprovalStep, today: datetime.date) -> list:
    """The logins that may decide `step`: its approver's, and their delegates' (in force or starting later)."""
    users = []
    if step.approver.user_id:
        users.append(step.approver.user)
    delegations = (
        ApprovalDelegation.objects.filter(delegator_id=step.approver_id, cancelled_at__isnull=True, ends_on__gte=today)
        .select_related("delegate__user")
        .order_by("pk")
    )
    for delegation in delegations:
        user = delegation.delegate.user
        if user is None or user.pk in {u.pk for u in users}:
            continue
        if delegation.delegate_id == step.request.employee_id or decides_twice(delegation.delegate, user, step):
            continue  # nobody decides their own request, nor approves one request twice
        users.append(user)
    return users


def _grant_deciders(step: ApprovalStep) -> list:
    """Grant the permission to decide `step` to everyone `_decider_users` names; returns them."""
    deciders = _decider_users(step, timezone.localdate())
    for user in deciders:
        assign_perm(f"accounts.{DECIDE}", user, step)
    return deciders


def _activate(step: ApprovalStep, acting_user) -> None:
    """The step now waits on its approver: grant the permission to decide it and tell them."""
    now = timezone.now()
    step.status = ApprovalStepStatus.PENDING
    step.activated_at = now
    set_history_user(step, acting_user)
    step.save(update_fields=["status", "activated_at"])
    decider_ids = {user.pk for user in _grant_deciders(step)}
    request = step.request
    # The approver, and the delegates in force who may decide this one (not the requester, say).
    in_force = [
        d.delegate.work_email
        for d in delegations_in_force(delegator=step.approver)
        if d.delegate.user_id in decider_ids
    ]
    email_send_on_commit(
        template="approval_needed",
        to=[step.approver.work_email, *in_force],
        context={
            "step": step,
            "request": request,
            "approver": step.approver,
            "url": portal_url("access:step_decide", step.pk),
        },
    )


def _revoke_decide_perms(step: ApprovalStep) -> None:
    ApprovalStepUserObjectPermission.objects.filter(content_object=step, permission__codename=DECIDE).delete()


def _skip_open_steps(request: AccessRequest, acting_user, *, comment: str) -> None:
    open_steps = ApprovalStep.objects.select_for_update(of=("self",)).filter(
        request=request, status__in=[ApprovalStepStatus.PENDING, ApprovalStepStatus.WAITING]
    )
    for step in open_steps:
        step.status = ApprovalStepStatus.SKIPPED
        step.comment = comment
        set_history_user(step, acting_user)
        step.save(update_fields=["status", "comment"])
        _revoke_decide_perms(step)


def _revoke_cancel_perms(request: AccessRequest) -> None:
    AccessRequestUserObjectPermission.objects.filter(content_object=request, permission__codename=CANCEL).delete()


def _finish(request: AccessRequest, acting_user, *, approved: bool, comment: str = "", decider=None) -> None:
    request.status = AccessRequestStatus.APPROVED if approved else AccessRequestStatus.REJECTED
    request.decided_at = timezone.now()
    set_history_user(request, acting_user)
    request.save(update_fields=["status", "decided_at"])
    _revoke_cancel_perms(request)
    if approved:
        enqueue_on_commit("offboarding.tasks.access_request_fulfil", request.pk)
    email_send_on_commit(
        template="access_request_approved" if approved else "access_request_rejected",
        to=[request.employee.work_email],
        context={
            "request": request,
            "employee": request.employee,
            "comment": comment,
            "decider": decider,
            "url": portal_url("access:request_detail", request.pk),
        },
    )


@transaction.atomic
def approval_step_decide(*, step: ApprovalStep, acting_user, approve: bool, comment: str = "") -> ApprovalStep:
    """Approve or reject one pending step, once.

    Refused when the step is not pending (decided already, or waiting for an earlier step), when
    the request is no longer pending, or when `acting_user` may not decide it (PermissionDenied).
    A rejection needs a comment (the requester is told why) and ends the request; an approval
    opens the next step, or, for the last one, approves the request, which the lifecycle engine
    then provisions. Either way the requester gets an email with the outcome.
    """
    comment = (comment or "").strip()
    request_id = ApprovalStep.objects.filter(pk=step.pk).values_list("request_id", flat=True).first()
    if request_id is None:
        raise ValidationError("This approval step no longer exists.")
    request = (
        AccessRequest.objects.select_for_update(of=("self",))
        .select_related("employee", "application")
        .get(pk=request_id)
    )
    locked = ApprovalStep.objects.select_for_update(of=("self",)).select_related("approver__user").get(pk=step.pk)
    locked.request = request
    if locked.status in (ApprovalStepStatus.APPROVED, ApprovalStepStatus.REJECTED):
        who = locked.decided_by.get_username() if locked.decided_by_id else "someone"
        raise ValidationError(
            f"This step was already {locked.get_status_display().lower()} by {who} "
            f"on {timezone.localtime(locked.decided_at):%d %b %Y %H:%M}; it cannot be decided again."
        )
    if locked.status != ApprovalStepStatus.PENDING or request.status != AccessRequestStatus.PENDING:
        raise ValidationError(
            f"This step is not waiting for a decision (it is {locked.get_status_display().lower()}, "
            f"and the request is {request.get_status_display().lower()})."
        )
    if not can_decide_step(acting_user, locked):
        raise PermissionDenied("You may not decide this approval step.")
    if not approve and not comment:
        raise ValidationError({"comment": "Say why you reject the request: the requester will read it."})
    locked.status = ApprovalStepStatus.APPROVED if approve else ApprovalStepStatus.REJECTED
    locked.decided_by = acting_user
    locked.decided_at = timezone.now()
    locked.comment = comment
    set_history_user(locked, acting_user)
    locked.save(update_fields=["status", "decided_by", "decided_at", "comment"])
    _revoke_decide_perms(locked)
    on_behalf = locked.approver.user_id != acting_user.pk
    audit_record(
        action=AuditEvent.Action.APPROVE if approve else AuditEvent.Action.REJECT,
        target=locked,
        acting_user=acting_user,
        detail={
            "request": request.pk,
            "employee": request.employee_id,
            "application": request.application_id,
            "order": locked.order,
            "approver": locked.approver_id,
            "on_behalf_of": locked.approver_id if on_behalf else None,
            "comment": comment,
        },
    )
    if not approve:
        _skip_open_steps(request, acting_user, comment=f"Not needed: step {locked.order} rejected the request.")
        _finish(request, acting_user, approved=False, comment=comment, decider=acting_user)
        return locked
    following = (
        ApprovalStep.objects.select_for_update(of=("self",))
        .select_related("approver__user")
        .filter(request=request, status=ApprovalStepStatus.WAITING)
        .order_by("order")
        .first()
    )
    if following is not None:
        following.request = request
        _activate(following, acting_user)
    else:
        _finish(request, acting_user, approved=True, comment=comment, decider=acting_user)
    return locked


# --- Delegation ------------------------------------------------------------------------------


@transaction.atomic
def delegation_create(
    *,
    delegator: Employee,
    delegate: Employee | None,
    starts_on: datetime.date | None,
    ends_on: datetime.date | None,
    acting_user,
    reason: str = "",
) -> ApprovalDelegation:
    """`delegator` lets `delegate` decide their approval steps from `starts_on` to `ends_on` (inclusive).

    The delegate gets the permission on each step pending now; steps that open later grant it too,
    while the delegation has not ended. Refused: no delegate, oneself, someone who cannot sign in,
    a start in the past, an end before the start, or a range overlapping another delegation.
    """
    today = timezone.localdate()
    errors: dict[str, str] = {}
    if delegate is None:
        errors["delegate"] = "Choose the colleague who decides for you."
    elif delegate.pk == delegator.pk:
        errors["delegate"] = "You cannot delegate approvals to yourself."
    elif delegate.user_id is None or delegate.status == EmployeeStatus.TERMINATED:
        errors["delegate"] = "Choose a colleague who can sign in to Portal."
    if starts_on is None:
        errors["starts_on"] = "Give the first day of the delegation."
    elif starts_on < today:
        errors["starts_on"] = f"The first day {starts_on:%d %b %Y} is in the past; choose today or later."
    if ends_on is None:
        errors["ends_on"] = "Give the last day of the delegation."
    elif starts_on is not None and ends_on < starts_on:
        errors["ends_on"] = "The last day cannot be before the first day."
    elif starts_on is not None and (ends_on - starts_on).days > 365:
        errors["ends_on"] = "A delegation lasts at most a year."
    if errors:
        raise ValidationError(errors)
    Employee.objects.select_for_update(of=("self",)).only("pk").get(pk=delegator.pk)
    overlapping = (
        ApprovalDelegation.objects.filter(
            delegator=delegator, cancelled_at__isnull=True, starts_on__lte=ends_on, ends_on__gte=starts_on
        )
        .select_related("delegate")
        .first()
    )
    if overlapping is not None:
        raise ValidationError(
            {
                "starts_on": f"You already delegate to {overlapping.delegate.full_name} from "
                f"{overlapping.starts_on:%d %b %Y} to {overlapping.ends_on:%d %b %Y}; cancel that one first."
            }
        )
    delegation = ApprovalDelegation(
        delegator=delegator,
        delegate=delegate,
        starts_on=starts_on,
        ends_on=ends_on,
        reason=(reason or "").strip()[:200],
        created_by=acting_user if getattr(acting_user, "pk", None) else None,
    )
    delegation.full_clean()
    set_history_user(delegation, acting_user)
    delegation.save()
    pending = (
        ApprovalStep.objects.filter(approver=delegator, status=ApprovalStepStatus.PENDING)
        .exclude(request__employee=delegate)
        .exclude(request__steps__approver=delegate)
    )
    _grant_many(delegate.user, pending)
    audit_record(
        action=AuditEvent.Action.DELEGATION_CREATED,
        target=delegation,
        acting_user=acting_user,
        detail={
            "delegator": delegator.pk,
            "delegate": delegate.pk,
            "starts_on": starts_on,
            "ends_on": ends_on,
        },
    )
    email_send_on_commit(
        template="delegation_created",
        to=[delegate.work_email],
        context={"delegation": delegation, "url": portal_url("access:approvals")},
    )
    return delegation


def _grant_many(user, steps) -> int:
    """Grant `user` the permission to decide each step of `steps` in one insert (existing grants kept)."""
    from django.contrib.auth.models import Permission

    permission = Permission.objects.get(content_type__app_label="accounts", codename=DECIDE)
    rows = [
        ApprovalStepUserObjectPermission(user=user, permission=permission, content_object_id=pk)
        for pk in steps.values_list("pk", flat=True)
    ]
    ApprovalStepUserObjectPermission.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


@transaction.atomic
def delegation_cancel(*, delegation: ApprovalDelegation, acting_user) -> ApprovalDelegation:
    """End a delegation now: the delegate can no longer decide the delegator's steps. Idempotent."""
    locked = ApprovalDelegation.objects.select_for_update(of=("self",)).select_related("delegate").get(pk=delegation.pk)
    if locked.cancelled_at is not None:
        return locked
    locked.cancelled_at = timezone.now()
    set_history_user(locked, acting_user)
    locked.save(update_fields=["cancelled_at"])
    _drop_delegate_perms(locked)
    audit_record(
        action=AuditEvent.Action.DELEGATION_CANCELLED,
        target=locked,
        acting_user=acting_user,
        detail={"delegator": locked.delegator_id, "delegate": locked.delegate_id},
    )
    return locked


def _drop_delegate_perms(delegation: ApprovalDelegation) -> int:
    if delegation.delegate.user_id is None:
        return 0
    still = ApprovalDelegation.objects.filter(
        delegator_id=delegation.delegator_id,
        delegate_id=delegation.delegate_id,
        cancelled_at__isnull=True,
        ends_on__gte=timezone.localdate(),
    ).exclude(pk=delegation.pk)
    if still.exists():
        return 0
    deleted, _ = ApprovalStepUserObjectPermission.objects.filter(
        user_id=delegation.delegate.user_id,
        permission__codename=DECIDE,
        content_object__approver_id=delegation.delegator_id,
    ).delete()
    return deleted


# --- Periodic: reminders and notices -----------------------------------------------------------


def approval_steps_remind(*, now: datetime.datetime | None = None) -> dict:
    """Email each approver whose steps have waited `APPROVAL_REMINDER_DAYS` (and were not reminded
    within that time) one reminder listing them; their delegates in force get a copy. Ended
    delegations lose their leftover permissions here too. Safe to run twice: a step just
    reminded is not reminded again before the interval."""
    now = now or timezone.now()
    interval = datetime.timedelta(days=access_setting("APPROVAL_REMINDER_DAYS"))
    due = list(
        ApprovalStep.objects.filter(status=ApprovalStepStatus.PENDING, activated_at__lte=now - interval)
        .filter(Q(last_reminded_at__isnull=True) | Q(last_reminded_at__lte=now - interval))
        .select_related("approver", "request__employee", "request__application")
        .order_by("approver_id", "activated_at", "pk")
    )
    by_approver: dict[int, list[ApprovalStep]] = {}
    for step in due:
        by_approver.setdefault(step.approver_id, []).append(step)
    today = timezone.localdate(now)
    sent = 0
    for steps in by_approver.values():
        approver = steps[0].approver
        requesters = {s.request.employee.work_email for s in steps}
        delegates = [
            d.delegate.work_email
            for d in delegations_in_force(delegator=approver, day=today)
            if d.delegate.work_email not in requesters
        ]
        items = [
            {"step": s, "days": (now - s.activated_at).days, "url": portal_url("access:step_decide", s.pk)}
            for s in steps
        ]
        if email_send(
            template="approval_reminder",
            to=[approver.work_email, *delegates],
            context={"approver": approver, "items": items, "url": portal_url("access:approvals")},
        ):
            sent += 1
        ApprovalStep.objects.filter(pk__in=[s.pk for s in steps]).update(last_reminded_at=now)
    # Delegations that ended this past week lose their leftover grants (harmless, as the helpers check
    # the dates, but kept tidy); a week, so a schedule that missed a few days still catches up.
    ended = ApprovalDelegation.objects.filter(
        cancelled_at__isnull=True, ends_on__lt=today, ends_on__gte=today - datetime.timedelta(days=7)
    )
    for delegation in ended.select_related("delegate"):
        _drop_delegate_perms(delegation)
    return {"steps": len(due), "emails": sent}


def entitlements_notify_expiry(*, now: datetime.datetime | None = None) -> dict:
    """Tell each holder of time-bound access that ends within `EXPIRY_NOTICE_DAYS`, once per entitlement."""
    now = now or timezone.now()
    horizon = now + datetime.timedelta(days=access_setting("EXPIRY_NOTICE_DAYS"))
    soon = list(
        Entitlement.objects.filter(
            status=EntitlementStatus.ACTIVE,
            expires_at__gt=now,
            expires_at__lte=horizon,
            expiry_notified_at__isnull=True,
        )
        .select_related("employee", "application")
        .order_by("pk")
    )
    notified = []
    for entitlement in soon:
        # Claim first (conditional update), so two runs at once send one notice.
        if not Entitlement.objects.filter(pk=entitlement.pk, expiry_notified_at__isnull=True).update(
            expiry_notified_at=now
        ):
            continue
        email_send_on_commit(
            template="access_expiring",
            to=[entitlement.employee.work_email],
            context={
                "entitlement": entitlement,
                "employee": entitlement.employee,
                "url": portal_url("access:request"),
            },
        )
        notified.append(entitlement.pk)
    return {"notified": notified}
