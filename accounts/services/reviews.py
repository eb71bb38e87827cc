"""Access reviews (certification campaigns): launch, decisions, the due date, reminders and evidence.

A campaign (`AccessReview`) is launched once: checked in the admin's request (every item has a reviewer),
then a worker freezes one `ReviewItem` per live entitlement in scope, in committed batches, resuming where
a dead worker stopped. Reviewers decide in self-service; a revoke or a level
change fires `accounts.hooks.access_review_decided`, which the lifecycle engine (offboarding) fills
in: it adds a visible task and reports back through `review_item_record_applied` / `_failed`.
The hourly `review_campaigns_hourly` sends reminders, applies the due-date rule (capped), records
what other paths confirmed (`review_items_reconcile`), moves open items after a reviewer who left or a
holder who moved (`review_items_follow_reviewers`), closes finished campaigns, queues the
recurring ones that are due and re-enqueues launches whose worker died. Nothing here imports the engine.
"""

import datetime
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Exists, F, Max, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone
from simple_history.utils import bulk_create_with_history

from accounts.hooks import access_review_decided
from accounts.models import (
    RECURRENCE_MONTHS,
    SENSITIVITY_RANK,
    AccessRequest,
    AccessReview,
    AccessReviewStatus,
    ApprovalDelegation,
    Employee,
    EmployeeStatus,
    Entitlement,
    EntitlementStatus,
    ReviewDecision,
    ReviewerKind,
    ReviewerRule,
    ReviewItem,
    ReviewItemState,
    ReviewSuggestion,
    RoleApplication,
    UnansweredRule,
)
from portal.audit import audit_record
from portal.history import set_history_user
from portal.limits import text_limit_check
from portal.mail import email_send_on_commit, portal_url
from portal.models import AuditEvent
from portal.queue import enqueue_on_commit

LAUNCH_BATCH = 1000  # entitlements read, and items written, per round trip at launch
UNUSED_DAYS = 90  # a last use older than this suggests revoking
REMINDER_DAYS = (7, 1)  # reminders go out this many days before the due date
BULK_LIMIT = 1000  # items one bulk decision may touch (the page says when more match)
MISSING_SHOWN = 50  # items without a reviewer named on the launch page


# --- Scope and reviewers --------------------------------------------------------------------------


def review_scope(campaign: AccessReview) -> QuerySet[Entitlement]:
    """The live (pending or active) entitlements the campaign covers, by its scope."""
    entitlements = Entitlement.objects.filter(status__in=[EntitlementStatus.ACTIVE, EntitlementStatus.PENDING])
    if campaign.scope_everything:
        return entitlements
    if campaign.pk is not None:
        applications = list(campaign.applications.values_list("pk", flat=True))
        departments = list(campaign.departments.values_list("pk", flat=True))
    else:
        applications, departments = [], []
    if applications:
        entitlements = entitlements.filter(application_id__in=applications)
    if departments:
        entitlements = entitlements.filter(employee__department_id__in=departments)
    if campaign.min_sensitivity:
        rank = SENSITIVITY_RANK[campaign.min_sensitivity]
        entitlements = entitlements.filter(
            application__sensitivity__in=[name for name, r in SENSITIVITY_RANK.items() if r >= rank]
        )
    return entitlements


def _check_scope(campaign: AccessReview) -> None:
    if campaign.scope_everything:
        return
    if campaign.min_sensitivity or campaign.applications.exists() or campaign.departments.exists():
        return
    raise ValidationError(
        "The campaign has no scope: tick 'scope everything' or choose applications, a sensitivity or departments."
    )


class _People:
    """Who can review: each employee's manager, status and login, read once per launch (one query)."""

    def __init__(self):
        self._rows = {
            pk: (manager_id, status, user_id)
            for pk, manager_id, status, user_id in Employee.objects.values_list("pk", "manager_id", "status", "user_id")
        }

    def manager_of(self, pk: int | None) -> int | None:
        row = self._rows.get(pk)
        return row[0] if row else None

    def can_review(self, pk: int) -> bool:
        row = self._rows.get(pk)
        return bool(row) and row[1] != EmployeeStatus.TERMINATED and row[2] is not None

    def first_able(self, start: int | None, *, holder: int, skip: frozenset = frozenset()) -> int | None:
        """`start`, or the first manager above them, who has a login, has not left and is neither the holder
        (nobody reviews their own access) nor in `skip`. None when the chain runs out."""
        seen = set()
        person = start
        while person is not None and person not in seen:
            seen.add(person)
            if person != holder and person not in skip and self.can_review(person):
                return person
            person = self.manager_of(person)
        return None


def _first_reviewer(rule: str, *, holder: int, manager: int | None, owner: int | None, people: _People):
    """(reviewer id or None, kind, why none) for stage one of an item."""
    if rule == ReviewerRule.OWNER:
        if owner is None:
            return None, ReviewerKind.OWNER, "the application has no owner"
        found = people.first_able(owner, holder=holder)
        return found, ReviewerKind.OWNER, "" if found else "no owner (or owner's manager) can review"
    if manager is None:
        return None, ReviewerKind.MANAGER, "the person has no manager"
    found = people.first_able(manager, holder=holder)
    return found, ReviewerKind.MANAGER, "" if found else "no manager up the line can review (left, or no login)"


def _suggest(*, birthright: bool, last_used_at, now) -> tuple[str, str]:
    """A labelled suggestion where the data supports one: the role's birthright → keep; a last use
    older than `UNUSED_DAYS` → revoke. No recorded use at all suggests nothing (the application may
    send no usage data)."""
    if birthright:
        return ReviewSuggestion.KEEP, "Birthright of the person's current role"
    if last_used_at is not None and last_used_at < now - datetime.timedelta(days=UNUSED_DAYS):
        return ReviewSuggestion.REVOKE, f"Not used for {UNUSED_DAYS} days (last use {last_used_at:%Y-%m-%d})"
    return ReviewSuggestion.NONE, ""


@dataclass
class LaunchPlan:
    """What launching would do: how many items, and which would have nobody to review them."""

    total: int = 0
    missing_count: int = 0
    missing: list[str] = field(default_factory=list)  # the first `MISSING_SHOWN`, "Jan Vogel · GitHub: why"


def _scope_rows(campaign: AccessReview, *, after: int = 0, frozen: bool = True) -> Iterator[list[dict]]:
    """The entitlements in scope above id `after` with what an item freezes, `LAUNCH_BATCH` at a time (keyset
    on the id). `frozen=False` reads only what choosing a reviewer needs (the check before launching)."""
    rows = review_scope(campaign)
    names = [
        "pk",
        "employee_id",
        "employee__first_name",
        "employee__preferred_name",
        "employee__last_name",
        "employee__manager_id",
        "application__name",
        "application__owner_id",
        "level",
    ]
    if frozen:
        justification = (
            AccessRequest.objects.filter(entitlement=OuterRef("pk"))
            .order_by("-created_at", "-pk")
            .values("justification")
        )
        birthright = RoleApplication.objects.filter(
            role_id=OuterRef("employee__role_id"), application_id=OuterRef("application_id")
        )
        rows = rows.annotate(request_justification=Subquery(justification[:1]), is_birthright=Exists(birthright))
        names += [
            "employee__department__name",
            "application_id",
            "granted_at",
            "last_used_at",
            "source",
            "request_justification",
            "is_birthright",
        ]
    rows = rows.values(*names).order_by("pk")
    last = after
    while True:
        batch = list(rows.filter(pk__gt=last)[:LAUNCH_BATCH])
        if not batch:
            return
        yield batch
        last = batch[-1]["pk"]


def _items(
    campaign: AccessReview, *, fallback_id: int | None, plan: LaunchPlan, after: int = 0, build: bool = True
) -> Iterator[list[ReviewItem]]:
    """The items of `campaign` for the entitlements above id `after`, a batch at a time, counting into `plan`
    (total, and the items nobody could review, named). `build=False` only counts (yields empty batches)."""
    people = _People()
    if fallback_id is not None and not people.can_review(fallback_id):
        fallback_id = None  # left, or lost the login, since IT chose them
    now = timezone.now()
    for batch in _scope_rows(campaign, after=after, frozen=build):
        items = []
        for row in batch:
            plan.total += 1
            holder = row["employee_id"]
            name = f"{row['employee__preferred_name'] or row['employee__first_name']} {row['employee__last_name']}"
            reviewer, kind, why = _first_reviewer(
                campaign.reviewer_rule,
                holder=holder,
                manager=row["employee__manager_id"],
                owner=row["application__owner_id"],
                people=people,
            )
            if reviewer is None and fallback_id is not None and fallback_id != holder:
                reviewer, kind = fallback_id, ReviewerKind.CHOSEN
            if reviewer is None:
                plan.missing_count += 1
                if len(plan.missing) < MISSING_SHOWN:
                    plan.missing.append(f"{name} · {row['application__name']} ({row['level']}): {why}")
            if not build:
                continue
            suggestion, reason = _suggest(birthright=row["is_birthright"], last_used_at=row["last_used_at"], now=now)
            items.append(
                ReviewItem(
                    campaign=campaign,
                    entitlement_id=row["pk"],
                    employee_id=holder,
                    employee_name=name[:210],
                    department_name=row["employee__department__name"] or "",
                    application_id=row["application_id"],
                    application_name=row["application__name"],
                    level=row["level"],
                    granted_at=row["granted_at"],
                    last_used_at=row["last_used_at"],
                    source=row["source"],
                    justification=(row["request_justification"] or "")[:2000],
                    suggestion=suggestion,
                    suggestion_reason=reason,
                    reviewer_id=reviewer,
                    reviewer_kind=kind,
                )
            )
        yield items


def review_campaign_preview(*, campaign: AccessReview, fallback_reviewer: Employee | None = None) -> LaunchPlan:
    """How many items launching `campaign` would freeze, and which would have no reviewer (named, with why).

    Reads the scope in batches (only what choosing a reviewer needs), writes nothing."""
    plan = LaunchPlan()
    for _ in _items(campaign, fallback_id=getattr(fallback_reviewer, "pk", None), plan=plan, build=False):
        pass
    return plan


def _missing_message(plan: LaunchPlan) -> str:
    shown = "; ".join(plan.missing)
    more = plan.missing_count - len(plan.missing)
    return (
        f"{plan.missing_count} item{'s' if plan.missing_count != 1 else ''} would have nobody to review "
        f"{'them' if plan.missing_count != 1 else 'it'}: {shown}{f'; and {more} more' if more > 0 else ''}. "
        "Give them a manager or an application owner, or choose a reviewer for them. Nothing was launched."
    )


# --- Launch (on the queue, in committed batches, resumable) ---------------------------------------

LAUNCH_TASK = "accounts.tasks.access_review_launch"
LAUNCH_TASK_TIMEOUT = 3600  # seconds a worker may take for one launch (100k items take about a minute)
# A launching campaign whose worker wrote no batch for this long has lost it (killed, or the message was lost
# on the Redis broker): the launch action, the hourly task and the queue's redelivery may take it over.
LAUNCH_STALE = datetime.timedelta(minutes=10)


def _launch_stale(campaign: AccessReview, now: datetime.datetime) -> bool:
    since = campaign.launch_heartbeat_at or campaign.launched_at
    return since is None or since < now - LAUNCH_STALE


def review_campaign_launch_queue(
    *, campaign: AccessReview, acting_user, fallback_reviewer: Employee | None = None, enqueue: bool = True
) -> AccessReview:
    """Check a draft campaign, then hand its launch to the queue (`review_campaign_launch_run`).

    Before anything is queued, in the caller's request: the campaign must be a draft with a scope, the
    fallback reviewer must have a login, and every item in scope must have a reviewer; otherwise a
    `ValidationError` names the items nobody could review and nothing changes. Then the campaign is
    `launching` (reviewers see nothing yet), `item_count` holds the number planned, and the task is enqueued
    on commit. A campaign already launching whose worker died (`LAUNCH_STALE`) is enqueued again: it resumes.
    """
    now = timezone.now()
    user = acting_user if getattr(acting_user, "pk", None) else None
    with transaction.atomic():
        campaign = AccessReview.objects.select_for_update().get(pk=campaign.pk)
        if campaign.status == AccessReviewStatus.LAUNCHING:
            if not _launch_stale(campaign, now):
                raise ValidationError(f"{campaign} is being launched: its page shows the progress.")
            campaign.launch_heartbeat_at = None
            campaign.launched_at = now
            campaign.save(update_fields=["launch_heartbeat_at", "launched_at"])
            if enqueue:
                enqueue_on_commit(LAUNCH_TASK, campaign.pk, timeout=LAUNCH_TASK_TIMEOUT)
            return campaign
        if campaign.status != AccessReviewStatus.DRAFT:
            raise ValidationError(
                f"{campaign} is {campaign.get_status_display().lower()}; only a draft can be launched."
            )
        _check_scope(campaign)
        if fallback_reviewer is not None and not fallback_reviewer.user_id:
            raise ValidationError(f"{fallback_reviewer.full_name} has no login and cannot review.")
        plan = review_campaign_preview(campaign=campaign, fallback_reviewer=fallback_reviewer)
        if plan.missing_count:
            raise ValidationError(_missing_message(plan))
        if plan.total == 0:
            raise ValidationError(f"{campaign} covers no live access: nothing to review. Nothing was launched.")
        campaign.status = AccessReviewStatus.LAUNCHING
        campaign.launched_at = now
        campaign.launched_by = user
        campaign.launch_fallback_reviewer = fallback_reviewer
        campaign.launch_heartbeat_at = None
        campaign.launch_error = ""
        campaign.item_count = plan.total
        set_history_user(campaign, acting_user)
        campaign.save(
            update_fields=[
                "status",
                "launched_at",
                "launched_by",
                "launch_fallback_reviewer",
                "launch_heartbeat_at",
                "launch_error",
                "item_count",
            ]
        )
        if enqueue:
            enqueue_on_commit(LAUNCH_TASK, campaign.pk, timeout=LAUNCH_TASK_TIMEOUT)
    return campaign


def _beat(campaign_id: int, beat: datetime.datetime) -> datetime.datetime | None:
    """Inside a transaction: renew this worker's claim, None if another worker took it over meanwhile.

    One conditional UPDATE: it locks the campaign's row until the transaction ends (PostgreSQL re-checks the
    condition after waiting for another worker's lock; SQLite has one writer at a time)."""
    now = timezone.now()
    renewed = AccessReview.objects.filter(
        pk=campaign_id, status=AccessReviewStatus.LAUNCHING, launch_heartbeat_at=beat
    ).update(launch_heartbeat_at=now)
    return now if renewed else None


def review_campaign_launch_run(*, campaign_id: int) -> str:
    """Freeze the items of a launching campaign, `LAUNCH_BATCH` at a time, each batch committed; then open it.

    Idempotent and resumable: the worker claims the campaign with a conditional update (a fresh claim of
    another worker, or a campaign no longer launching, and it does nothing); items are written in
    entitlement-id order and a run starts after the highest entitlement already frozen, so a launch that
    died halfway goes on where it stopped (and the one-item-per-entitlement constraint makes a duplicate
    impossible even then). Each batch renews the claim in the same transaction, so a worker that lost its
    claim writes nothing more. If, since the check before queueing, some items lost every reviewer, the
    items written are removed and the campaign goes back to draft with the items named in `launch_error`.
    Returns what happened: "launched", "refused", or "not claimed".
    """
    now = timezone.now()
    claimable = Q(launch_heartbeat_at__isnull=True) | Q(launch_heartbeat_at__lt=now - LAUNCH_STALE)
    if not AccessReview.objects.filter(claimable, pk=campaign_id, status=AccessReviewStatus.LAUNCHING).update(
        launch_heartbeat_at=now
    ):
        return "not claimed"
    beat = now
    campaign = AccessReview.objects.select_related("launched_by").get(pk=campaign_id)
    user = campaign.launched_by
    after = campaign.items.aggregate(last=Max("entitlement_id"))["last"] or 0
    plan = LaunchPlan()
    for items in _items(campaign, fallback_id=campaign.launch_fallback_reviewer_id, plan=plan, after=after):
        if plan.missing_count:
            continue  # keep counting to name them all; nothing more is written
        with transaction.atomic():
            beat = _beat(campaign_id, beat)
            if beat is None:
                return "not claimed"
            bulk_create_with_history(items, ReviewItem, batch_size=LAUNCH_BATCH, default_user=user)
    if plan.missing_count:
        return _launch_refused(campaign_id, beat, _missing_message(plan))
    with transaction.atomic():
        if _beat(campaign_id, beat) is None:
            return "not claimed"
        campaign = AccessReview.objects.get(pk=campaign_id)
        total = campaign.items.count()
        if total == 0:
            return _launch_refused(
                campaign_id, None, f"{campaign} covers no live access: nothing to review. Nothing was launched."
            )
        campaign.status = AccessReviewStatus.ACTIVE
        campaign.launch_heartbeat_at = None
        campaign.item_count = total
        set_history_user(campaign, user)
        campaign.save(update_fields=["status", "launch_heartbeat_at", "item_count"])
        audit_record(
            action=AuditEvent.Action.REVIEW_LAUNCHED,
            target=campaign,
            acting_user=user,
            detail={
                "items": total,
                "fallback_reviewer": campaign.launch_fallback_reviewer_id,
                "due_on": campaign.due_on,
            },
        )
        _plan_next(campaign, user)
    return "launched"


def _launch_refused(campaign_id: int, beat, message: str) -> str:
    """Undo a launch that cannot finish: its items go, the campaign is a draft again and says why."""
    with transaction.atomic():
        if beat is not None and _beat(campaign_id, beat) is None:
            return "not claimed"
        campaign = AccessReview.objects.select_for_update().get(pk=campaign_id)
        while ids := list(campaign.items.values_list("pk", flat=True)[:LAUNCH_BATCH]):
            ReviewItem.objects.filter(pk__in=ids).delete()
        campaign.status = AccessReviewStatus.DRAFT
        campaign.launch_heartbeat_at = None
        campaign.launched_at = None
        campaign.launched_by = None
        campaign.item_count = 0
        campaign.launch_error = message[:4000]
        set_history_user(campaign, None)
        campaign.save(
            update_fields=["status", "launch_heartbeat_at", "launched_at", "launched_by", "item_count", "launch_error"]
        )
    return "refused"


def review_campaign_launch(
    *, campaign: AccessReview, acting_user, fallback_reviewer: Employee | None = None
) -> AccessReview:
    """Check and launch `campaign` here and now (`review_campaign_launch_queue`, then the run in this process):
    for the bench, the tests and callers that are themselves a worker. Raises `ValidationError` as the check
    does, or with the run's reason when it had to stop."""
    campaign = review_campaign_launch_queue(
        campaign=campaign, acting_user=acting_user, fallback_reviewer=fallback_reviewer, enqueue=False
    )
    review_campaign_launch_run(campaign_id=campaign.pk)
    campaign.refresh_from_db()
    if campaign.status != AccessReviewStatus.ACTIVE:
        raise ValidationError(campaign.launch_error or f"{campaign} was not launched.")
    return campaign


def review_campaign_launch_progress(campaign: AccessReview) -> dict:
    """How far a launch has got: items frozen so far of those planned (one query; the batches are committed,
    so the database itself is the progress, readable by any process), and whether its worker seems lost."""
    done = campaign.items.count()
    total = max(campaign.item_count, done, 1)
    return {
        "done": done,
        "total": total,
        "percent": min(100, int(100 * done / total)),
        "stalled": campaign.status == AccessReviewStatus.LAUNCHING and _launch_stale(campaign, timezone.now()),
    }


def review_campaigns_launch_resume(*, now: datetime.datetime | None = None) -> list[int]:
    """Enqueue again the launches whose worker died or whose message was lost (no batch for `LAUNCH_STALE`)."""
    now = now or timezone.now()
    stale = AccessReview.objects.filter(status=AccessReviewStatus.LAUNCHING).filter(
        Q(launch_heartbeat_at__lt=now - LAUNCH_STALE)
        | Q(launch_heartbeat_at__isnull=True, launched_at__lt=now - LAUNCH_STALE)
    )
    ids = list(stale.values_list("pk", flat=True))
    for pk in ids:
        enqueue_on_commit(LAUNCH_TASK, pk, timeout=LAUNCH_TASK_TIMEOUT)
    return ids


def _add_months(day: datetime.date, months: int) -> datetime.date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return datetime.date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def _plan_next(campaign: AccessReview, acting_user) -> AccessReview | None:
    """The recurring successor of `campaign`, a draft with the same scope and rules, dates moved on."""
    months = RECURRENCE_MONTHS.get(campaign.recurrence)
    if not months or AccessReview.objects.filter(previous=campaign).exists():
        return None
    successor = AccessReview(
        name=f"{campaign.name} (next)"[:150],
        description=campaign.description,
        scope_everything=campaign.scope_everything,
        min_sensitivity=campaign.min_sensitivity,
        reviewer_rule=campaign.reviewer_rule,
        starts_on=_add_months(campaign.starts_on, months),
        due_on=_add_months(campaign.due_on, months),
        unanswered_rule=campaign.unanswered_rule,
        auto_revoke_cap_percent=campaign.auto_revoke_cap_percent,
        recurrence=campaign.recurrence,
        previous=campaign,
        created_by=acting_user if getattr(acting_user, "pk", None) else None,
    )
    successor.full_clean()
    set_history_user(successor, acting_user)
    successor.save()
    successor.applications.set(campaign.applications.all())
    successor.departments.set(campaign.departments.all())
    return successor


# --- Who decides ----------------------------------------------------------------------------------


def _delegators_of(employee: Employee, day: datetime.date) -> QuerySet:
    return ApprovalDelegation.objects.filter(
        cancelled_at__isnull=True, starts_on__lte=day, ends_on__gte=day, delegate=employee
    ).values("delegator_id")


def review_items_for_reviewer(employee: Employee, *, day: datetime.date | None = None) -> QuerySet[ReviewItem]:
    """Open items of active campaigns that `employee` reviews now: their own, and those of a reviewer who
    delegated to them (in force today), never an item about their own access. One query."""
    day = day or timezone.localdate()
    # One IN over "me and whoever delegated to me" (not an OR of two conditions): the database then reads
    # the reviewer index for those few people instead of scanning every item of every campaign.
    reviewers = Employee.objects.filter(Q(pk=employee.pk) | Q(pk__in=_delegators_of(employee, day))).values("pk")
    return ReviewItem.objects.filter(
        reviewer_id__in=reviewers, state=ReviewItemState.OPEN, campaign__status=AccessReviewStatus.ACTIVE
    ).exclude(employee=employee)


def may_decide(employee: Employee | None, item: ReviewItem, *, day: datetime.date | None = None) -> bool:
    """True when `employee` may decide `item` now (see `review_items_for_reviewer`)."""
    if employee is None or item.employee_id == employee.pk:
        return False
    if item.state != ReviewItemState.OPEN or item.campaign.status != AccessReviewStatus.ACTIVE:
        return False
    if item.reviewer_id == employee.pk:
        return True
    return _delegators_of(employee, day or timezone.localdate()).filter(delegator_id=item.reviewer_id).exists()


# --- Decisions ------------------------------------------------------------------------------------


def _validate(item: ReviewItem, *, decision: str, comment: str, new_level: str) -> None:
    if decision not in ReviewDecision.values:
        raise ValidationError({"decision": "Choose keep, revoke or change level."})
    text_limit_check(ReviewItem, "comment", comment)
    if decision == ReviewDecision.REVOKE and not comment.strip():
        raise ValidationError({"comment": "Say why the access should be revoked (a comment is required)."})
    if decision == ReviewDecision.CHANGE_LEVEL:
        levels = item.application.access_levels
        if new_level not in levels:
            raise ValidationError(
                {"new_level": f"{item.application_name} has no level {new_level!r}; choose one of {', '.join(levels)}."}
            )
        if new_level == item.level:
            raise ValidationError({"new_level": f"The access is at {new_level!r} already: choose keep instead."})


def _trail_entry(item: ReviewItem, *, decision: str, comment: str, new_level: str, acting_user, by_rule: bool, at):
    return {
        "stage": item.stage,
        "reviewer": item.reviewer_id,
        "reviewer_kind": item.reviewer_kind,
        "decision": decision,
        "new_level": new_level,
        "comment": comment,
        "by": acting_user.get_username() if getattr(acting_user, "pk", None) else "campaign rule",
        "at": at.isoformat(),
    }


@transaction.atomic
def review_item_decide(
    *,
    item: ReviewItem,
    decision: str,
    comment: str = "",
    new_level: str = "",
    acting_user,
    by_rule: bool = False,
) -> ReviewItem:
    """Record a reviewer's decision on one open item: keep, revoke (a comment is required) or change level.

    The decider must be the item's reviewer or a delegate in force, never the holder (`PermissionDenied`),
    unless the campaign's own rule decides (`by_rule`). With "manager, then owner", a manager's keep hands
    the item to the owner (stage 2); every other decision is final. A revoke or level change is sent to
    the lifecycle engine after commit (`access_review_decided`); a keep closes the item.
    """
    item = ReviewItem.objects.select_for_update(of=("self",)).select_related("campaign", "application").get(pk=item.pk)
    comment = (comment or "").strip()
    new_level = (new_level or "").strip() if decision == ReviewDecision.CHANGE_LEVEL else ""
    if not by_rule:
        from accounts.selectors import employee_for_user

        employee = employee_for_user(acting_user)
        open_now = item.state == ReviewItemState.OPEN and item.campaign.status == AccessReviewStatus.ACTIVE
        if open_now and not may_decide(employee, item):
            raise PermissionDenied("You do not review this item.")
    if item.campaign.status != AccessReviewStatus.ACTIVE:
        raise ValidationError(f"The campaign {item.campaign} is {item.campaign.get_status_display().lower()}.")
    if item.state != ReviewItemState.OPEN:
        raise ValidationError(f"{item} was decided already ({item.get_state_display().lower()}).")
    _validate(item, decision=decision, comment=comment, new_level=new_level)
    now = timezone.now()
    item.trail = [
        *item.trail,
        _trail_entry(
            item,
            decision=decision,
            comment=comment,
            new_level=new_level,
            acting_user=acting_user,
            by_rule=by_rule,
            at=now,
        ),
    ]
    user = acting_user if getattr(acting_user, "pk", None) else None
    next_stage = (
        item.campaign.reviewer_rule == ReviewerRule.MANAGER_THEN_OWNER
        and item.stage == 1
        and decision == ReviewDecision.KEEP
        and not by_rule
    )
    owner = None
    if next_stage:
        # Not whoever decided stage one: the reviewer, nor a delegate who decided for them.
        deciders = {item.reviewer_id}
        if user is not None:
            deciders |= set(Employee.objects.filter(user_id=user.pk).values_list("pk", flat=True))
        owner = _owner_reviewer(item, skip=deciders)
    if owner is not None:
        item.stage, item.reviewer_id, item.reviewer_kind = 2, owner, ReviewerKind.OWNER
        item.escalated_at = None
        fields = ["stage", "reviewer", "reviewer_kind", "escalated_at", "trail"]
    else:
        item.decision, item.comment, item.new_level = decision, comment, new_level
        item.decided_by, item.decided_at, item.decided_by_rule = user, now, by_rule
        item.state = ReviewItemState.KEPT if decision == ReviewDecision.KEEP else ReviewItemState.APPLYING
        fields = ["decision", "comment", "new_level", "decided_by", "decided_at", "decided_by_rule", "state", "trail"]
    set_history_user(item, acting_user)
    item.save(update_fields=fields)
    audit_record(
        action=AuditEvent.Action.REVIEW_DECIDED,
        target=item,
        acting_user=acting_user,
        detail={
            "campaign": item.campaign_id,
            "entitlement": item.entitlement_id,
            "decision": decision,
            "new_level": new_level,
            "stage": item.trail[-1]["stage"],
            "by_rule": by_rule,
            "handed_to_owner": owner,
        },
    )
    if item.state == ReviewItemState.APPLYING:
        access_review_decided.fire(item.pk)
    return item


def _owner_reviewer(item: ReviewItem, *, skip: set[int]) -> int | None:
    """The owner stage's reviewer: the application's owner (or the first able manager above them), not
    the holder and not whoever reviewed stage one."""
    person = item.application.owner_id
    seen = set()
    # A walk up from the owner, one row at a time (the chain is short; `_People` would read everyone).
    while person is not None and person not in seen:
        seen.add(person)
        row = Employee.objects.filter(pk=person).values_list("manager_id", "status", "user_id").first()
        if row is None:
            return None
        manager_id, status, user_id = row
        if person != item.employee_id and person not in skip and status != EmployeeStatus.TERMINATED and user_id:
            return person
        person = manager_id
    return None


def review_items_decide_many(*, items: list[ReviewItem], decision: str, comment: str, acting_user) -> dict:
    """The same decision on several items (a reviewer's bulk decision): each one through `review_item_decide`,
    in its own transaction. Returns {"done": [items], "failed": [(item, reason)]}; a level change is one
    item at a time (levels differ per application)."""
    if decision == ReviewDecision.CHANGE_LEVEL:
        raise ValidationError({"decision": "Change levels one item at a time: each application has its own levels."})
    if decision not in ReviewDecision.values:
        raise ValidationError({"decision": "Choose keep or revoke."})
    if decision == ReviewDecision.REVOKE and not (comment or "").strip():
        raise ValidationError({"comment": "Say why the access should be revoked (a comment is required)."})
    text_limit_check(ReviewItem, "comment", comment or "")
    done, failed = [], []
    for item in items:
        try:
            done.append(review_item_decide(item=item, decision=decision, comment=comment, acting_user=acting_user))
        except (ValidationError, PermissionDenied) as exc:
            failed.append((item, " ".join(getattr(exc, "messages", [str(exc)]))))
    return {"done": done, "failed": failed}


# --- What the engine reports back ---------------------------------------------------------------


@transaction.atomic
def review_item_record_applied(*, item_id: int, at: datetime.datetime | None = None) -> bool:
    """The engine (or another path) confirmed the decided change: the item shows when. Idempotent; True
    if this call recorded it. Only what the item decided counts: the access revoked for a revoke, the
    new level held for a level change."""
    item = ReviewItem.objects.select_for_update(of=("self",)).select_related("entitlement").filter(pk=item_id).first()
    if item is None or item.state not in (ReviewItemState.APPLYING, ReviewItemState.FAILED):
        return False
    entitlement = item.entitlement
    if item.decision == ReviewDecision.REVOKE:
        if entitlement.status != EntitlementStatus.REVOKED:
            return False
        at = entitlement.revoked_at or at
    elif entitlement.level != item.new_level or entitlement.status != EntitlementStatus.ACTIVE:
        return False
    item.state = ReviewItemState.APPLIED
    item.applied_at = at or timezone.now()
    item.apply_error = ""
    item.save(update_fields=["state", "applied_at", "apply_error"])
    return True


@transaction.atomic
def review_item_record_failed(*, item_id: int, error: str) -> bool:
    """The engine could not apply the decision: the item stays open and visible, with why. True if changed."""
    item = ReviewItem.objects.select_for_update(of=("self",)).filter(pk=item_id).first()
    if item is None or item.state != ReviewItemState.APPLYING:
        return False
    item.state = ReviewItemState.FAILED
    item.apply_error = (error or "The lifecycle engine could not apply it.")[:500]
    item.save(update_fields=["state", "apply_error"])
    return True


@transaction.atomic
def review_item_reapply(*, item: ReviewItem, acting_user) -> ReviewItem:
    """IT sends a decision the engine could not apply to it again (after fixing the cause)."""
    item = ReviewItem.objects.select_for_update(of=("self",)).get(pk=item.pk)
    if item.state != ReviewItemState.FAILED:
        raise ValidationError(f"{item} is {item.get_state_display().lower()}; only a failed item is sent again.")
    item.state = ReviewItemState.APPLYING
    set_history_user(item, acting_user)
    item.save(update_fields=["state"])
    audit_record(
        action=AuditEvent.Action.REVIEW_REAPPLIED,
        target=item,
        acting_user=acting_user,
        detail={"campaign": item.campaign_id, "previous_error": item.apply_error},
    )
    access_review_decided.fire(item.pk)
    return item


def review_items_reconcile(*, limit: int = 5000) -> int:
    """Items whose change another path confirmed (a leaver's revocation, a manual confirmation): record it.
    Bounded per call; returns how many were recorded."""
    candidates = ReviewItem.objects.filter(state__in=[ReviewItemState.APPLYING, ReviewItemState.FAILED]).filter(
        Q(decision=ReviewDecision.REVOKE, entitlement__status=EntitlementStatus.REVOKED)
        | Q(
            decision=ReviewDecision.CHANGE_LEVEL,
            entitlement__status=EntitlementStatus.ACTIVE,
            entitlement__level=F("new_level"),
        )
    )
    recorded = 0
    for pk in candidates.values_list("pk", flat=True)[:limit]:
        recorded += review_item_record_applied(item_id=pk)
    return recorded


# --- Due date, reminders, closing -----------------------------------------------------------------


@transaction.atomic
def review_campaign_process_due(
    *, campaign: AccessReview, acting_user=None, confirm_over_cap: bool = False, today: datetime.date | None = None
) -> dict:
    """After the due date, the unanswered items follow the campaign's rule, once (idempotent).

    keep: each is kept by the rule. revoke: each is revoked by the rule through the engine, unless that
    is more than `auto_revoke_cap_percent` of the campaign's items: then nothing is revoked, the
    campaign waits (`cap_blocked_at`) and only IT confirming (`confirm_over_cap`) applies it.
    escalate: each goes to its reviewer's manager (never the holder); items with nobody above stay
    with their reviewer, counted.
    """
    today = today or timezone.localdate()
    campaign = AccessReview.objects.select_for_update().get(pk=campaign.pk)
    if campaign.status != AccessReviewStatus.ACTIVE or campaign.due_processed_at is not None:
        return {"campaign": campaign.pk, "note": "nothing to do"}
    if today <= campaign.due_on and not confirm_over_cap:
        return {"campaign": campaign.pk, "note": "not due"}
    open_items = campaign.items.filter(state=ReviewItemState.OPEN).select_related("campaign", "application")
    unanswered = open_items.count()
    rule = campaign.unanswered_rule
    result = {"campaign": campaign.pk, "rule": rule, "unanswered": unanswered}
    if rule == UnansweredRule.REVOKE:
        cap = campaign.item_count * campaign.auto_revoke_cap_percent / 100
        if unanswered > cap and not confirm_over_cap:
            if campaign.cap_blocked_at is None:
                campaign.cap_blocked_at = timezone.now()
                set_history_user(campaign, acting_user)
                campaign.save(update_fields=["cap_blocked_at"])
            return {**result, "blocked": True, "cap": int(cap)}
    comment = {
        UnansweredRule.KEEP: "Unanswered by the due date: kept by the campaign's rule.",
        UnansweredRule.REVOKE: "Unanswered by the due date: revoked by the campaign's rule.",
    }
    decided = escalated = stuck = 0
    if rule in comment:
        decision = ReviewDecision.KEEP if rule == UnansweredRule.KEEP else ReviewDecision.REVOKE
        for item in open_items.iterator(chunk_size=500):
            review_item_decide(
                item=item, decision=decision, comment=comment[rule], acting_user=acting_user, by_rule=True
            )
            decided += 1
    else:
        people = _People()
        now = timezone.now()
        for item in open_items.iterator(chunk_size=500):
            above = people.first_able(people.manager_of(item.reviewer_id), holder=item.employee_id)
            if above is None:
                stuck += 1
                continue
            previous = item.reviewer_id
            item.reviewer_id, item.reviewer_kind, item.escalated_at = above, ReviewerKind.ESCALATED, now
            set_history_user(item, acting_user)
            item.save(update_fields=["reviewer", "reviewer_kind", "escalated_at"])
            audit_record(
                action=AuditEvent.Action.REVIEW_ESCALATED,
                target=item,
                acting_user=acting_user,
                detail={"campaign": campaign.pk, "from": previous, "to": above},
            )
            escalated += 1
    campaign.due_processed_at = timezone.now()
    fields = ["due_processed_at"]
    if confirm_over_cap:
        audit_record(
            action=AuditEvent.Action.REVIEW_CAP_CONFIRMED,
            target=campaign,
            acting_user=acting_user,
            detail={"unanswered": unanswered, "cap_percent": campaign.auto_revoke_cap_percent},
        )
    set_history_user(campaign, acting_user)
    campaign.save(update_fields=fields)
    audit_record(
        action=AuditEvent.Action.REVIEW_DUE_APPLIED,
        target=campaign,
        acting_user=acting_user,
        detail={"rule": rule, "decided": decided, "escalated": escalated, "stuck": stuck},
    )
    return {**result, "decided": decided, "escalated": escalated, "stuck": stuck}


def review_campaign_confirm_over_cap(*, campaign: AccessReview, acting_user) -> dict:
    """IT confirms that the unanswered items of a campaign blocked by its cap are revoked by its rule."""
    if campaign.cap_blocked_at is None or campaign.due_processed_at is not None:
        raise ValidationError(f"{campaign} is not waiting for a confirmation over its cap.")
    return review_campaign_process_due(campaign=campaign, acting_user=acting_user, confirm_over_cap=True)


def review_campaigns_remind(*, today: datetime.date | None = None) -> int:
    """Email each reviewer with open items `REMINDER_DAYS` before a campaign's due date, and each person a
    reviewer delegated to (a delegation in force that day: they may decide those items too), once per
    campaign and reminder day (the campaign remembers which went out; the outbox key dedupes). A delegate is
    told of the items they may decide, never of those about their own access. Returns how many emails were
    queued."""
    today = today or timezone.localdate()
    sent = 0
    for campaign in AccessReview.objects.filter(status=AccessReviewStatus.ACTIVE, due_on__gte=today):
        days_left = (campaign.due_on - today).days
        due = [d for d in REMINDER_DAYS if days_left <= d and d not in campaign.reminded_days]
        if not due:
            continue
        reminder = min(due)
        with transaction.atomic():
            locked = AccessReview.objects.select_for_update().get(pk=campaign.pk)
            if reminder in locked.reminded_days:
                continue
            open_items = locked.items.filter(state=ReviewItemState.OPEN, reviewer__isnull=False)
            counts = dict(open_items.values_list("reviewer_id").annotate(n=Count("pk")).order_by())
            delegations = list(
                ApprovalDelegation.objects.filter(
                    delegator_id__in=list(counts),
                    cancelled_at__isnull=True,
                    starts_on__lte=today,
                    ends_on__gte=today,
                )
                .exclude(delegate__status=EmployeeStatus.TERMINATED)
                .values_list("delegator_id", "delegate_id", "ends_on")
            )
            # Items a delegate may not decide: those about their own access (one query for all delegates).
            own = {
                (reviewer, holder): n
                for reviewer, holder, n in open_items.filter(
                    reviewer_id__in={d[0] for d in delegations}, employee_id__in={d[1] for d in delegations}
                )
                .values_list("reviewer_id", "employee_id")
                .annotate(n=Count("pk"))
                .order_by()
            }
            people = Employee.objects.in_bulk([*counts, *(d[1] for d in delegations)])
            context = {
                "campaign": locked.name,
                "due_on": locked.due_on,
                "days_left": days_left,
                "url": portal_url("access:reviews"),
            }
            for pk, count in counts.items():
                reviewer = people.get(pk)
                if reviewer is None:
                    continue
                email_send_on_commit(
                    template="access_review_reminder",
                    to=[reviewer.work_email],
                    context={**context, "reviewer": reviewer.full_name, "count": count},
                    key=f"review-reminder:{locked.pk}:{reminder}:{pk}",
                )
                sent += 1
            for delegator_id, delegate_id, ends_on in delegations:
                delegator, delegate = people.get(delegator_id), people.get(delegate_id)
                count = counts[delegator_id] - own.get((delegator_id, delegate_id), 0)
                if delegator is None or delegate is None or count <= 0:
                    continue
                email_send_on_commit(
                    template="access_review_reminder",
                    to=[delegate.work_email],
                    context={
                        **context,
                        "reviewer": delegate.full_name,
                        "count": count,
                        "on_behalf_of": delegator.full_name,
                        "delegated_until": ends_on,
                    },
                    key=f"review-reminder:{locked.pk}:{reminder}:{delegator_id}:delegate:{delegate_id}",
                )
                sent += 1
            AccessReview.objects.filter(pk=locked.pk).update(reminded_days=[*locked.reminded_days, *due])
    return sent


@transaction.atomic
def review_campaign_close_if_finished(*, campaign: AccessReview) -> bool:
    """Close an active campaign once every item is final: kept, or its change confirmed. True if closed."""
    campaign = AccessReview.objects.select_for_update().get(pk=campaign.pk)
    if campaign.status != AccessReviewStatus.ACTIVE:
        return False
    if campaign.items.exclude(state__in=[ReviewItemState.KEPT, ReviewItemState.APPLIED]).exists():
        return False
    campaign.status = AccessReviewStatus.CLOSED
    campaign.closed_at = timezone.now()
    campaign.save(update_fields=["status", "closed_at"])
    audit_record(action=AuditEvent.Action.REVIEW_CLOSED, target=campaign, detail={"items": campaign.item_count})
    return True


def review_items_follow_reviewers(*, limit: int = 5000) -> int:
    """Open items follow a reviewer who left (to the first able manager above them) and, for a manager's
    review, a holder who moved (to their new manager). Never to the holder. Read `limit` candidates at a
    time in id order, so items that can go nowhere (nobody able above) never hide the ones after them;
    idempotent (an item already with the right reviewer is left alone). Returns how many moved."""
    open_items = ReviewItem.objects.filter(state=ReviewItemState.OPEN, campaign__status=AccessReviewStatus.ACTIVE)
    left = Q(reviewer__status=EmployeeStatus.TERMINATED) | Q(reviewer__user__isnull=True)
    moved = Q(reviewer_kind=ReviewerKind.MANAGER, stage=1) & ~Q(reviewer_id=F("employee__manager_id"))
    candidates = open_items.filter(left | moved).order_by("pk")
    people, changed, after = None, 0, 0
    while batch := list(
        candidates.filter(pk__gt=after).values_list(
            "pk", "reviewer_id", "employee_id", "employee__manager_id", "reviewer_kind"
        )[:limit]
    ):
        after = batch[-1][0]
        people = people or _People()
        changed += _follow(batch, people)
    return changed


def _follow(candidates, people) -> int:
    changed = 0
    for pk, reviewer, holder, holder_manager, kind in candidates:
        start = holder_manager if kind == ReviewerKind.MANAGER else people.manager_of(reviewer)
        if kind == ReviewerKind.MANAGER and holder_manager is None:
            start = people.manager_of(reviewer)
        new = people.first_able(start, holder=holder)
        if new is None or new == reviewer:
            continue
        with transaction.atomic():
            item = ReviewItem.objects.select_for_update(of=("self",)).get(pk=pk)
            if item.state != ReviewItemState.OPEN or item.reviewer_id != reviewer:
                continue
            item.reviewer_id = new
            item.save(update_fields=["reviewer"])
            audit_record(
                action=AuditEvent.Action.REVIEW_ESCALATED,
                target=item,
                detail={"campaign": item.campaign_id, "from": reviewer, "to": new, "why": "reviewer left or moved"},
            )
            changed += 1
    return changed


def review_campaigns_hourly(*, today: datetime.date | None = None) -> dict:
    """Every hour: reminders, the due-date rule, confirmations from other paths, closing, recurring launches.

    Each step is idempotent, so a second run (or two workers) changes nothing more."""
    today = today or timezone.localdate()
    due = []
    for campaign in AccessReview.objects.filter(
        status=AccessReviewStatus.ACTIVE, due_on__lt=today, due_processed_at__isnull=True
    ):
        due.append(review_campaign_process_due(campaign=campaign, today=today))
    reconciled = review_items_reconcile()
    followed = review_items_follow_reviewers()
    closed = sum(review_campaign_close_if_finished(campaign=c) for c in AccessReview.objects.filter(status="active"))
    launched, waiting = [], []
    resumed = review_campaigns_launch_resume()
    for campaign in AccessReview.objects.filter(
        status=AccessReviewStatus.DRAFT, previous__isnull=False, starts_on__lte=today
    ):
        try:
            review_campaign_launch_queue(campaign=campaign, acting_user=None)  # checked here, frozen by a worker
        except ValidationError as exc:
            waiting.append({"campaign": campaign.pk, "why": " ".join(exc.messages)[:300]})
        else:
            launched.append(campaign.pk)
    return {
        "reminders": review_campaigns_remind(today=today),
        "due": due,
        "reconciled": reconciled,
        "followed": followed,
        "closed": closed,
        "launched": launched,
        "resumed": resumed,
        "waiting": waiting,
    }


# --- Evidence -------------------------------------------------------------------------------------


def review_progress(campaign: AccessReview) -> dict:
    """Counts per state and the share answered (kept, applying, applied or failed), in one query."""
    counts = dict(campaign.items.values_list("state").annotate(n=Count("pk")).order_by())
    total = sum(counts.values())
    decided = total - counts.get(ReviewItemState.OPEN, 0)
    return {
        "total": total,
        "open": counts.get(ReviewItemState.OPEN, 0),
        "kept": counts.get(ReviewItemState.KEPT, 0),
        "applying": counts.get(ReviewItemState.APPLYING, 0),
        "applied": counts.get(ReviewItemState.APPLIED, 0),
        "failed": counts.get(ReviewItemState.FAILED, 0),
        "decided": decided,
        "percent": int(100 * decided / total) if total else 0,
    }


@transaction.atomic
def review_campaign_save(*, campaign: AccessReview, acting_user) -> AccessReview:
    """Create or change a campaign that is still a draft (validated, with history); a launched one is frozen."""
    if campaign.pk is not None:
        current = AccessReview.objects.select_for_update().get(pk=campaign.pk)
        if current.status != AccessReviewStatus.DRAFT:
            raise ValidationError(f"{current} is launched: its scope and rules are frozen.")
    elif getattr(acting_user, "pk", None):
        campaign.created_by = acting_user
    campaign.full_clean()
    set_history_user(campaign, acting_user)
    campaign.save()
    return campaign
