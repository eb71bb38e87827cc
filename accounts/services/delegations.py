"""Out-of-office delegation of approvals: a delegate decides the delegator's steps for a while.

A delegation grants the delegate the permission on the delegator's pending steps (steps opening
later grant it too, see `approval_steps`); ending it takes the permission back.
"""

import datetime

from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import (
    DECIDE_STEP,
    ApprovalDelegation,
    ApprovalStep,
    ApprovalStepStatus,
    ApprovalStepUserObjectPermission,
    Employee,
    EmployeeStatus,
)
from portal.audit import audit_record
from portal.history import set_history_user
from portal.mail import email_send_on_commit, portal_url
from portal.models import AuditEvent


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
    permission = Permission.objects.get(content_type__app_label="accounts", codename=DECIDE_STEP)
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
    delegation_perms_drop(locked)
    audit_record(
        action=AuditEvent.Action.DELEGATION_CANCELLED,
        target=locked,
        acting_user=acting_user,
        detail={"delegator": locked.delegator_id, "delegate": locked.delegate_id},
    )
    return locked


def delegation_perms_drop(delegation: ApprovalDelegation) -> int:
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
        permission__codename=DECIDE_STEP,
        content_object__approver_id=delegation.delegator_id,
    ).delete()
    return deleted
