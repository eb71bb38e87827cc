"""Access changes outside join, move and leave: approved access requests, access review decisions and
time-bound access ending.

Both run through the lifecycle engine, so IT sees each provisioning or revocation as a task (with
its connector's error, retry and skip) like any other. Each employee has at most one open
"access change" run; each change adds one task to it (opening the run if needed).
"""

from django.db import transaction
from django.utils import timezone

from accounts.models import (
    AccessRequest,
    AccessRequestStatus,
    Employee,
    EmployeeStatus,
    Entitlement,
    EntitlementSource,
    EntitlementStatus,
    ReviewDecision,
    ReviewItem,
    ReviewItemState,
)
from accounts.services import reviews
from accounts.services.access_requests import expires_at_for
from accounts.services.provisioning import entitlement_plan
from offboarding import engine
from offboarding.models import Assignee, ChecklistKind, ChecklistRun, RunStatus, Task, TaskStatus
from portal.history import set_history_user


def _access_run(employee: Employee, acting_user) -> ChecklistRun:
    """The employee's open access-change run, locked (so the sweeper cannot close it under us), or a new one."""
    now = timezone.now()
    run = engine.run_start(
        employee=employee,
        kind=ChecklistKind.ACCESS,
        event_date=timezone.localdate(now),
        effective_at=now,
        acting_user=acting_user,
    )
    return ChecklistRun.objects.select_for_update().get(pk=run.pk)


def _task_exists(employee: Employee, key: str) -> bool:
    return Task.objects.filter(run__employee=employee, run__kind=ChecklistKind.ACCESS, key=key).exists()


@transaction.atomic
def access_request_fulfil(*, request_id: int, acting_user=None) -> dict:
    """Provision what an approved request grants: its entitlement is planned (`pending`, with the
    request's end date as expiry) and a `provision_entitlement` task (key `request:<id>`) provisions it
    through the application's connector. A request that is not approved (cancelled meanwhile, say)
    provisions nothing. Idempotent: a second delivery finds the entitlement linked and the task present."""
    request = (
        AccessRequest.objects.select_for_update(of=("self",))
        .select_related("employee", "application")
        .filter(pk=request_id)
        .first()
    )
    if request is None or request.status != AccessRequestStatus.APPROVED:
        return {"request": request_id, "provisioned": False, "note": "not approved"}
    employee = Employee.objects.select_for_update(of=("self",)).get(pk=request.employee_id)
    key = f"request:{request.pk}"
    if request.entitlement_id and _task_exists(employee, key):
        return {"request": request.pk, "entitlement": request.entitlement_id, "provisioned": False, "note": "already"}
    if employee.status == EmployeeStatus.TERMINATED:
        return {"request": request.pk, "provisioned": False, "note": "employee terminated"}
    entitlement = entitlement_plan(
        employee=employee,
        application=request.application,
        level=request.level,
        source=EntitlementSource.REQUEST,
        acting_user=acting_user,
        expires_at=expires_at_for(request.end_date),
    )
    if request.entitlement_id != entitlement.pk:
        request.entitlement = entitlement
        set_history_user(request, acting_user)
        request.save(update_fields=["entitlement"])
    run = _access_run(employee, acting_user)
    task = engine.task_add(
        run=run,
        key=key,
        title=f"Provision {request.application.name} ({request.level}) — request #{request.pk}",
        action="provision_entitlement",
        params={"entitlement": entitlement.pk, "access_request": request.pk},
        assignee_type=Assignee.SYSTEM,
        due_at=timezone.now(),
    )
    engine.run_advance(run=run)
    return {"request": request.pk, "entitlement": entitlement.pk, "task": task.pk, "run": run.pk}


def access_expire_due(*, now=None, limit: int = 500) -> dict:
    """Queue the revocation of every active entitlement past its `expires_at` (bounded per call): one
    `revoke_entitlement` task each, key `expire:<entitlement id>`, so a second call adds nothing."""
    now = now or timezone.now()
    due = list(
        Entitlement.objects.filter(status=EntitlementStatus.ACTIVE, expires_at__lte=now)
        .select_related("application")
        .order_by("expires_at", "pk")[:limit]
    )
    queued = []
    for entitlement in due:
        with transaction.atomic():
            employee = Employee.objects.select_for_update(of=("self",)).get(pk=entitlement.employee_id)
            key = f"expire:{entitlement.pk}"
            if _task_exists(employee, key):
                continue
            run = _access_run(employee, None)
            engine.task_add(
                run=run,
                key=key,
                title=f"Revoke {entitlement.application.name}: time-bound access ended",
                action="revoke_entitlement",
                params={"entitlement": entitlement.pk, "reason": "time-bound access ended"},
                assignee_type=Assignee.SYSTEM,
                due_at=min(now, timezone.now()),
            )
            engine.run_advance(run=run)
            queued.append(entitlement.pk)
    return {"due": len(due), "queued": queued}


@transaction.atomic
def access_review_apply(*, item_id: int) -> dict:
    """Apply a review decision (revoke, or change level) as one engine task in the holder's access run,
    key `review:<item>`, which reports back to the item when it is confirmed (see the actions).

    What cannot be applied is recorded on the item (it stays open and visible to IT): a level change
    on access that is no longer active. Access revoked meanwhile counts as applied. Idempotent: a
    second delivery finds the task."""
    item = (
        ReviewItem.objects.select_for_update(of=("self",))
        .select_related("entitlement__application", "campaign")
        .filter(pk=item_id)
        .first()
    )
    if item is None or item.state != ReviewItemState.APPLYING:
        return {"item": item_id, "note": "nothing to apply"}
    employee = Employee.objects.select_for_update(of=("self",)).get(pk=item.employee_id)
    key = f"review:{item.pk}"
    entitlement = item.entitlement
    if item.decision == ReviewDecision.REVOKE:
        if entitlement.status == EntitlementStatus.REVOKED:
            reviews.review_item_record_applied(item_id=item.pk)
            return {"item": item.pk, "note": "already revoked"}
        action, title = "revoke_entitlement", f"Revoke {entitlement.application.name} — access review"
        params = {"entitlement": entitlement.pk, "reason": f"access review: {item.campaign.name}"}
    else:
        if entitlement.status == EntitlementStatus.ACTIVE and entitlement.level == item.new_level:
            reviews.review_item_record_applied(item_id=item.pk)
            return {"item": item.pk, "note": "level held already"}
        if entitlement.status != EntitlementStatus.ACTIVE:
            reviews.review_item_record_failed(
                item_id=item.pk,
                error=f"The access is {entitlement.get_status_display().lower()}; its level cannot be changed.",
            )
            return {"item": item.pk, "note": "not active"}
        action = "change_entitlement_level"
        title = f"Change {entitlement.application.name} to {item.new_level} — access review"
        params = {"entitlement": entitlement.pk, "level": item.new_level}
    params["review_item"] = item.pk
    earlier = list(
        Task.objects.filter(run__employee=employee, run__kind=ChecklistKind.ACCESS, key__startswith=key)
        .select_related("run")
        .order_by("pk")
    )
    if earlier:
        last = earlier[-1]
        if last.status == TaskStatus.FAILED and last.run.status == RunStatus.RUNNING:
            # Sent again by IT after a failure: the same task gets a fresh set of attempts.
            engine.task_retry(task=last, acting_user=None, reason=f"Access review item #{item.pk} sent again")
            return {"item": item.pk, "task": last.pk, "note": "retried"}
        if last.status not in (TaskStatus.SKIPPED, TaskStatus.DONE, TaskStatus.FAILED):
            return {"item": item.pk, "task": last.pk, "note": "already"}  # in flight (a second delivery)
        key = f"{key}:again-{len(earlier)}"  # skipped, or its run is over: a new task
    run = _access_run(employee, None)
    task = engine.task_add(
        run=run,
        key=key,
        title=f"{title} {item.campaign.name} (item #{item.pk})"[:200],
        action=action,
        params=params,
        assignee_type=Assignee.SYSTEM,
        due_at=timezone.now(),
    )
    engine.run_advance(run=run)
    return {"item": item.pk, "task": task.pk, "run": run.pk}
