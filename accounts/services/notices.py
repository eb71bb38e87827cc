"""Periodic emails about access: reminders to approvers of waiting steps, notices of access ending soon.

Both are safe to run twice: a step just reminded, or an entitlement already noticed, is skipped.
The intervals are accounts' settings (`accounts.conf`).
"""

import datetime

from django.db.models import Q
from django.utils import timezone

from accounts.access import delegations_in_force
from accounts.conf import access_setting
from accounts.models import (
    ApprovalDelegation,
    ApprovalStep,
    ApprovalStepStatus,
    Entitlement,
    EntitlementStatus,
)
from accounts.services.delegations import delegation_perms_drop
from portal.mail import email_send, email_send_on_commit, portal_url


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
        delegation_perms_drop(delegation)
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
