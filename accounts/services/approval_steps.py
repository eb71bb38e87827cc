"""Approval steps: who approves a request, opening each step, deciding it, and moving it to someone else.

A step's object permission (`DECIDE_STEP_PERM`) is granted to its approver and their delegates
while it is pending, and removed from everyone once it is decided, skipped or handed on. The
last decision ends the request (`access_request_finish`), which fires
`hooks.access_request_approved` on approval. `access_requests` builds on these too.
Requests and steps are locked in one order (request, then its steps), so a decision, a second
decision and a cancellation racing on the same request run one after the other.
"""

import datetime

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm

from accounts.access import can_decide_step, decides_twice, delegations_in_force
from accounts.event_data import access_request_data
from accounts.hooks import access_request_approved
from accounts.models import (
    CANCEL_REQUEST,
    DECIDE_STEP,
    DECIDE_STEP_PERM,
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
)
from accounts.services.sod import sod_exceptions_for_approved_request
from portal.audit import audit_record
from portal.events import event_emit
from portal.history import set_history_user
from portal.limits import text_limit_check
from portal.mail import email_send_on_commit, portal_url
from portal.models import AuditEvent, EventType


def approval_chain_for(*, employee: Employee, application: Application) -> list[tuple[str, Employee]]:
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


# --- Opening, deciding and ending ------------------------------------------------------------


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
        assign_perm(DECIDE_STEP_PERM, user, step)
    return deciders


def approval_step_activate(step: ApprovalStep, acting_user) -> None:
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
    ApprovalStepUserObjectPermission.objects.filter(content_object=step, permission__codename=DECIDE_STEP).delete()


def approval_steps_skip_open(request: AccessRequest, acting_user, *, comment: str) -> None:
    open_steps = ApprovalStep.objects.select_for_update(of=("self",)).filter(
        request=request, status__in=[ApprovalStepStatus.PENDING, ApprovalStepStatus.WAITING]
    )
    for step in open_steps:
        step.status = ApprovalStepStatus.SKIPPED
        step.comment = comment
        set_history_user(step, acting_user)
        step.save(update_fields=["status", "comment"])
        _revoke_decide_perms(step)


def access_request_cancel_perms_revoke(request: AccessRequest) -> None:
    AccessRequestUserObjectPermission.objects.filter(
        content_object=request, permission__codename=CANCEL_REQUEST
    ).delete()


def access_request_finish(
    request: AccessRequest, acting_user, *, approved: bool, comment: str = "", decider=None
) -> None:
    """End the request as approved or rejected: its cancel permission goes, the requester is told
    after commit, and an approval fires `access_request_approved` (the lifecycle provisions it)."""
    request.status = AccessRequestStatus.APPROVED if approved else AccessRequestStatus.REJECTED
    request.decided_at = timezone.now()
    set_history_user(request, acting_user)
    request.save(update_fields=["status", "decided_at"])
    access_request_cancel_perms_revoke(request)
    event_emit(
        event_type=EventType.ACCESS_REQUEST_DECIDED, data=lambda: access_request_data(request, decided_by=acting_user)
    )
    if approved:
        # The control owners' approvals become time-bound exceptions before the grant is planned.
        sod_exceptions_for_approved_request(request=request, acting_user=acting_user)
        access_request_approved.fire(request.pk)  # the lifecycle provisions it, once this commits
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
    text_limit_check(ApprovalStep, "comment", comment)
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
        approval_steps_skip_open(request, acting_user, comment=f"Not needed: step {locked.order} rejected the request.")
        access_request_finish(request, acting_user, approved=False, comment=comment, decider=acting_user)
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
        approval_step_activate(following, acting_user)
    else:
        access_request_finish(request, acting_user, approved=True, comment=comment, decider=acting_user)
    return locked


# --- Handing a step on: a mover's new manager, a leaver's manager ----------------------------

REASSIGN_ACTIONS = {
    "mover": AuditEvent.Action.APPROVAL_MOVED,
    "leaver": AuditEvent.Action.APPROVAL_HANDED_OVER,
}


def approval_step_reassign(*, step: ApprovalStep, approver: Employee, acting_user, reason: str) -> ApprovalStep:
    """Give a locked, open (pending or waiting) step to `approver`, with its permission, history and audit event.

    `reason` is "mover" (the requester's new manager takes the manager step) or "leaver" (the
    approver left; their manager takes over), which sets the audit action. A pending step's
    permission moves with it: removed from the old approver and their delegates, granted to the
    new approver and their delegates whose delegation is in force or starts later (never to the
    requester, nor to someone who would approve the request twice). A waiting step holds no
    permission yet; it is granted when the step opens. The caller locks the step (and its request
    first, where it can) inside its transaction.
    """
    previous = step.approver_id
    step.approver = approver
    set_history_user(step, acting_user)
    step.save(update_fields=["approver"])
    if step.status == ApprovalStepStatus.PENDING:
        _revoke_decide_perms(step)
        _grant_deciders(step)
    audit_record(
        action=REASSIGN_ACTIONS[reason],
        target=step,
        acting_user=acting_user,
        detail={"from": previous, "to": approver.pk, "request": step.request_id},
    )
    return step


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
        approval_step_reassign(step=step, approver=manager, acting_user=acting_user, reason="mover")
        moved.append(step.pk)
    return moved


@transaction.atomic
def approvals_hand_over(*, employee: Employee, acting_user) -> dict:
    """Give a leaver's open approval steps and owned applications to their manager.

    Pending and waiting steps where the leaver is the approver go to the manager (to the manager's
    manager for a request the manager made for themselves), through `approval_step_reassign`: the
    permission to decide moves with them, to the manager's delegates too. Applications the leaver
    owns get the manager as owner. Whatever has nobody to go to is listed under `unassigned` for IT.
    Idempotent: what was handed over is no longer the leaver's.
    """
    locked = (
        Employee.objects.select_for_update(of=("self",)).select_related("manager__manager", "user").get(pk=employee.pk)
    )
    manager = locked.manager
    handed, unassigned = [], []
    steps = (
        ApprovalStep.objects.select_for_update(of=("self",))
        .select_related("request__employee", "request__application")
        .filter(approver=locked, status__in=[ApprovalStepStatus.PENDING, ApprovalStepStatus.WAITING])
        .order_by("pk")
    )
    for step in steps:
        target = manager
        if target is not None and step.request.employee_id == target.pk:
            target = target.manager  # nobody approves their own request
        if target is None or target.pk == locked.pk:
            unassigned.append(f"approval step {step.order} of request #{step.request_id} ({step.request.application})")
            continue
        approval_step_reassign(step=step, approver=target, acting_user=acting_user, reason="leaver")
        handed.append(step.pk)
    applications = []
    for application in Application.objects.select_for_update().filter(owner=locked).order_by("name"):
        if manager is None:
            unassigned.append(f"ownership of {application.name}")
            continue
        application.owner = manager
        set_history_user(application, acting_user)
        application.save(update_fields=["owner"])
        audit_record(
            action=AuditEvent.Action.OWNER_HANDED_OVER,
            target=application,
            acting_user=acting_user,
            detail={"from": locked.pk, "to": manager.pk},
        )
        applications.append(application.pk)
    return {
        "manager": manager.pk if manager else None,
        "approval_steps": handed,
        "applications": applications,
        "unassigned": unassigned,
    }
