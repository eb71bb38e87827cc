"""The retention purge: a leaver's personal data is anonymised `RETENTION_DAYS` after their last day.

The leave run only records the date; the daily schedule (`offboarding.tasks.purge_due`) purges
everyone due, in the employee row, history rows, task texts and audit snapshots. Records stay.
"""

import datetime
import logging
import time

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Replace
from django.utils import timezone

from accounts.models import (
    Employee,
    EmployeeStatus,
    Entitlement,
)
from accounts.services import employees
from offboarding.conf import lifecycle_setting
from offboarding.models import (
    ChecklistRun,
    HardwareReturn,
    Task,
)
from portal.history import set_history_user
from portal.models import AuditEvent

logger = logging.getLogger(__name__)


def retention_purge_date(last_day: datetime.date) -> datetime.date:
    """The day a leaver's personal data is purged: the first day after `last_day` + `RETENTION_DAYS`."""
    return last_day + datetime.timedelta(days=lifecycle_setting("RETENTION_DAYS") + 1)


def retention_purge_record(*, run: ChecklistRun) -> dict:
    """Record on the leave run when the daily retention purge will anonymise the person.

    The purge itself is not part of the run (`retention_purge_due` does it), so the run closes
    once access, approvals and hardware are dealt with. Idempotent: writes only when the date
    is new (e.g. the last day was changed).
    """
    due = retention_purge_date(run.event_date).isoformat()
    with transaction.atomic():
        locked = ChecklistRun.objects.select_for_update().get(pk=run.pk)
        if locked.details.get("purge_due") != due:
            locked.details = {**locked.details, "purge_due": due}
            set_history_user(locked, None)
            locked.save(update_fields=["details"])
            run.details = locked.details
    return {
        "purge_due": due,
        "retention_days": lifecycle_setting("RETENTION_DAYS"),
        "note": "Anonymised on that day by the daily retention purge, outside this checklist.",
    }


PURGE_BATCH = 100


def retention_purge_due(
    *, now: datetime.datetime | None = None, batch_size: int = PURGE_BATCH, max_seconds: float | None = None
) -> dict[str, int]:
    """Anonymise every terminated employee whose last day + `RETENTION_DAYS` has passed. Runs daily.

    Takes them `batch_size` at a time, oldest last day first, each in its own transaction through
    `retention_purge` (acting user: none, i.e. the system; one PURGE audit event each). Stops
    after `max_seconds` (default: half the queue's task timeout; at least one batch is done) and
    leaves the rest to the next run. Idempotent and safe to run concurrently: a person already
    anonymised is skipped, and the employee row lock in `employee_anonymise` makes a concurrent
    purge of the same person a no-op. One failure is logged and counted; the others still go ahead.
    """
    now = now or timezone.now()
    if max_seconds is None:
        max_seconds = settings.Q_CLUSTER["timeout"] / 2
    deadline = time.monotonic() + max_seconds
    # Due: the purge date (last day + RETENTION_DAYS + 1) is today or earlier.
    last_day_before = timezone.localdate(now) - datetime.timedelta(days=lifecycle_setting("RETENTION_DAYS"))
    due = Employee.objects.filter(
        status=EmployeeStatus.TERMINATED, anonymised_at__isnull=True, end_date__lt=last_day_before
    ).order_by("end_date", "pk")
    counts = {"purged": 0, "already": 0, "errors": 0, "left": 0}
    failed: set[int] = set()
    while True:
        batch = list(due.exclude(pk__in=failed).values_list("pk", flat=True)[:batch_size])
        if not batch:
            break
        for employee in Employee.objects.filter(pk__in=batch).order_by("end_date", "pk"):
            try:
                outcome = retention_purge(employee=employee, acting_user=None)
            except Exception:  # noqa: BLE001 - one bad row must not stop the purge of the others
                logger.exception("Retention purge of employee %s failed", employee.pk)
                failed.add(employee.pk)
                counts["errors"] += 1
                continue
            counts["already" if outcome["already"] else "purged"] += 1
        if time.monotonic() > deadline:
            counts["left"] = due.exclude(pk__in=failed).count()
            break
    return counts


@transaction.atomic
def retention_purge(*, employee: Employee, acting_user) -> dict:
    """Anonymise a terminated employee's personal data after the retention period.

    The employee row and its history rows (`accounts.services.employees.employee_anonymise`), then copies
    of their name and emails in their runs' task texts (and those tasks' history) and in the
    audit log's target snapshots. Records stay; only personal data goes. Idempotent.
    """
    outcome = employees.employee_anonymise(employee=employee, acting_user=acting_user)
    if outcome["already"]:
        return {"already": True}
    replaced = outcome["replaced"]
    fresh = Employee.objects.get(pk=employee.pk)
    new_values = employees.employee_anonymised_values(fresh)
    pairs = [(replaced["full_name"], fresh.full_name)]
    first_last = f"{replaced['first_name']} {replaced['last_name']}"
    if first_last != replaced["full_name"]:
        pairs.append((first_last, fresh.full_name))
    pairs += [(replaced[k], new_values[k] or "(removed)") for k in ("work_email", "personal_email") if replaced[k]]
    run_ids = list(ChecklistRun.objects.filter(employee=fresh).values_list("pk", flat=True))
    task_history = Task.history.model
    text_rows = 0
    for model in (Task, task_history):
        rows = model.objects.filter(run_id__in=run_ids)
        for old, new in pairs:
            text_rows += rows.filter(
                Q(title__contains=old) | Q(instructions__contains=old) | Q(note__contains=old)
            ).update(
                title=Replace(F("title"), Value(old), Value(new)),
                instructions=Replace(F("instructions"), Value(old), Value(new)),
                note=Replace(F("note"), Value(old), Value(new)),
            )
    targets = (
        Q(target_type=Employee._meta.label, target_id=str(fresh.pk))
        | Q(
            target_type=Entitlement._meta.label,
            target_id__in=[str(pk) for pk in fresh.entitlements.values_list("pk", flat=True)],
        )
        | Q(target_type=ChecklistRun._meta.label, target_id__in=[str(pk) for pk in run_ids])
        | Q(
            target_type=HardwareReturn._meta.label,
            target_id__in=[str(pk) for pk in fresh.hardware_returns.values_list("pk", flat=True)],
        )
    )
    # The audit log is append-only for everyone else; a retention purge rewrites only the
    # person's name in the snapshots (`AuditEvent._base_manager`, as portal.models documents).
    audit_rows = 0
    for old, new in pairs:
        audit_rows += (
            AuditEvent._base_manager.filter(targets, target_repr__contains=old)
            .exclude(action=AuditEvent.Action.PURGE)
            .update(target_repr=Replace(F("target_repr"), Value(old), Value(new)))
        )
    return {"already": False, "history_rows": outcome["history_rows"], "task_rows": text_rows, "audit_rows": audit_rows}
