"""Running an automated task: claim it, call its action, record the outcome or the failure.

A task is claimed with one conditional update (`queued → running`, or a `running` task whose
worker has been silent past the deadline); a second delivery finds nothing to claim, and a late
original delivery cannot record an outcome over the one that took over. A failing action is
retried with exponential backoff up to the task's `max_attempts` (an error that says retrying
cannot help, `retryable=False`, fails it at once), then `failed` with its error, and IT is
told once (`task_failure_alert`). Nothing here holds a transaction open while an action talks
to an outside system.
"""

import datetime
import logging
import traceback

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.services import reviews
from offboarding.conf import lifecycle_setting
from offboarding.engine.runs import assignee_for, due_at_from_now, run_advance
from offboarding.models import (
    Assignee,
    ChecklistRun,
    RunStatus,
    Task,
    TaskStatus,
)
from portal.audit import audit_record
from portal.mail import email_send_on_commit, portal_url
from portal.models import AuditEvent
from portal.queue import delivery_acknowledge

logger = logging.getLogger(__name__)


def action_registry() -> dict:
    """The registered actions by name (`offboarding.actions.registry`), complete once read."""
    # Imported when used, not at module level: action modules import the engine.
    from offboarding.actions import registry

    return registry


def _backoff(attempts: int) -> datetime.timedelta:
    base = lifecycle_setting("BACKOFF_BASE")
    return min(base * (2 ** max(attempts - 1, 0)), lifecycle_setting("BACKOFF_MAX"))


def _claimable(now: datetime.datetime) -> Q:
    stale = now - lifecycle_setting("RUNNING_DEADLINE")
    # A stale running task is taken over only while it has attempts left; the sweeper fails it otherwise.
    return Q(status=TaskStatus.QUEUED) | Q(
        status=TaskStatus.RUNNING, started_at__lt=stale, attempts__lt=F("max_attempts")
    )


def task_claim(*, task_id: int, now: datetime.datetime | None = None) -> Task | None:
    """Claim a task for execution, or None if another delivery has it or it is finished.

    Claims a `queued` task, or a `running` one whose worker has been silent past the deadline
    (it died) and that has attempts left; the claim is one conditional UPDATE, so two
    deliveries cannot both win. Counts an attempt. Returns the claimed task as the UPDATE left
    it (one query where the database has UPDATE ... RETURNING); its run is read on first use.
    """
    now = now or timezone.now()
    if connection.vendor in ("postgresql", "sqlite") and connection.features.can_return_columns_from_insert:
        return _claim_returning(task_id, now)
    claimed = (
        # Conditions on the task row only: a join would turn this into `id IN (subquery)`, whose
        # conditions PostgreSQL does not re-check after waiting for a concurrent claim's row lock.
        Task.objects.filter(pk=task_id)
        .filter(_claimable(now))
        .update(status=TaskStatus.RUNNING, started_at=now, attempts=F("attempts") + 1)
    )
    if not claimed:
        return None
    return Task.objects.get(pk=task_id)


def _claim_returning(task_id: int, now: datetime.datetime) -> Task | None:
    """`task_claim`'s conditional UPDATE, returning the row: one statement instead of an update and a read.

    The same conditions as `_claimable`, on the task row only (PostgreSQL re-checks them after
    waiting for a concurrent claim's row lock). Names come from the model, values are parameters.
    """
    quote = connection.ops.quote_name
    field = Task._meta.get_field

    def column(name: str) -> str:
        return quote(field(name).column)

    def value(name: str, data):
        return field(name).get_db_prep_save(data, connection)

    stale = now - lifecycle_setting("RUNNING_DEADLINE")
    columns = ", ".join(quote(f.column) for f in Task._meta.concrete_fields)
    status, started_at, attempts = column("status"), column("started_at"), column("attempts")
    sql = (
        f"UPDATE {quote(Task._meta.db_table)} SET {status} = %s, {started_at} = %s, {attempts} = {attempts} + 1 "  # noqa: S608
        f"WHERE {column('id')} = %s AND ({status} = %s OR ({status} = %s AND {started_at} < %s "
        f"AND {attempts} < {column('max_attempts')})) RETURNING {columns}"
    )
    params = [
        TaskStatus.RUNNING,
        value("started_at", now),
        task_id,
        TaskStatus.QUEUED,
        TaskStatus.RUNNING,
        value("started_at", stale),
    ]
    claimed = list(Task.objects.raw(sql, params))
    return claimed[0] if claimed else None


def task_execute(*, task_id: int) -> str:
    """Run one automated task: claim, act, record the outcome, advance the run.

    Returns the outcome: "done", "handed-off", "repeat" (pending again, due at the time the
    action asked for), "retry", "failed" (IT alerted), "not-claimed" (another delivery has it,
    or nothing to do) or "superseded" (a worker that took over this one's stale claim records
    the outcome instead).
    """
    task = task_claim(task_id=task_id)
    if task is None:
        return "not-claimed"
    from offboarding.actions import Handoff, Repeat

    action = action_registry().get(task.action)
    try:
        if action is None:
            raise ValidationError(f"Unknown action {task.action!r}.")
        outcome = action.func(task)
        if outcome is not None and not isinstance(outcome, dict | Handoff | Repeat):
            raise TypeError(f"Action {task.action!r} returned {type(outcome).__name__}, not a dict, Handoff or Repeat.")
    except Exception as exc:  # noqa: BLE001 - any failure of an action is recorded on the task
        return _task_failed(task, exc)
    mine = Task.objects.filter(pk=task.pk, status=TaskStatus.RUNNING, started_at=task.started_at)
    with transaction.atomic():
        if isinstance(outcome, Handoff):
            updated = mine.update(
                status=TaskStatus.PENDING,
                assignee_type=outcome.assignee_type,
                assignee=assignee_for(outcome.assignee_type, task.run.employee),
                instructions=f"{task.instructions}\n\n{outcome.instructions}".strip(),
                result=outcome.result,
                last_error="",
                not_before=None,
            )
            result = "handed-off"
        elif isinstance(outcome, Repeat):
            updated = mine.update(
                status=TaskStatus.PENDING,
                due_at=due_at_from_now(outcome.at, assignee_type=Assignee.SYSTEM),
                result=outcome.result,
                attempts=0,
                last_error="",
                not_before=None,
                queued_at=None,
            )
            result = "repeat"
        else:
            updated = mine.update(
                status=TaskStatus.DONE, completed_at=timezone.now(), result=outcome or {}, last_error=""
            )
            result = "done"
        if updated:
            # By id: the run row is read only if this outcome closes it (or an action read it already).
            run_advance(run=task.run if Task.run.is_cached(task) else ChecklistRun(pk=task.run_id))
            delivery_acknowledge()  # the queue's message goes with the outcome (ORM broker): no write after
        return result if updated else "superseded"


def _task_failed(task: Task, exc: Exception) -> str:
    message = str(exc) or exc.__class__.__name__
    logger.warning("Task %s (%s) failed on attempt %s: %s", task.pk, task.action, task.attempts, message)
    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    final = task.attempts >= task.max_attempts or getattr(exc, "retryable", True) is False
    if final and task.attempts < task.max_attempts:
        detail = f"Attempt {task.attempts} of {task.max_attempts}, not retried (trying again cannot help): {detail}"
    else:
        detail = f"Attempt {task.attempts} of {task.max_attempts}: {detail}"
    detail = detail[:4000]
    if final:
        fields = {"status": TaskStatus.FAILED, "last_error": detail, "not_before": None}
        outcome = "failed"
    else:
        fields = {
            "status": TaskStatus.PENDING,
            "last_error": detail,
            "not_before": timezone.now() + _backoff(task.attempts),
        }
        outcome = "retry"
    with transaction.atomic():
        updated = Task.objects.filter(pk=task.pk, status=TaskStatus.RUNNING, started_at=task.started_at).update(
            **fields
        )
        if updated and final:
            task_failure_alert(task_id=task.pk)
    return outcome if updated else "superseded"


def task_failure_alert(*, task_id: int) -> bool:
    """Tell IT, once, that a task is failed for good; True if this call did.

    For a failed task of an open run, not alerted yet: marks `failure_alerted_at`, records a
    TASK_FAILED audit event (task title, attempts, run; the error stays on the task) and emails
    `settings.IT_TEAM_EMAIL` after commit with the task, the person, the error and the link to
    the task's admin page, all in one transaction. The mark is a conditional update, so a
    second delivery, the sweeper finding the task again or two concurrent callers send one
    email. IT retrying the task clears the mark (`task_retry`): a new failure is told again.
    """
    with transaction.atomic():
        now = timezone.now()
        claimed = Task.objects.filter(
            pk=task_id, status=TaskStatus.FAILED, failure_alerted_at__isnull=True, run__status=RunStatus.RUNNING
        ).update(failure_alerted_at=now)
        if not claimed:
            return False
        task = Task.objects.select_related("run__employee").get(pk=task_id)
        run = task.run
        if task.params.get("review_item"):  # an access review's decision: its item shows it failed
            reviews.review_item_record_failed(item_id=task.params["review_item"], error=task.last_error)
        audit_record(
            action=AuditEvent.Action.TASK_FAILED,
            target=task,
            acting_user=None,
            detail={"run": run.pk, "title": task.title, "attempts": task.attempts, "alerted": settings.IT_TEAM_EMAIL},
        )
        # Plain values only: the email may be stored before it is sent.
        email_send_on_commit(
            template="task_failed",
            to=[settings.IT_TEAM_EMAIL],
            context={
                "title": task.title,
                "employee": run.employee.full_name,
                "kind": run.get_kind_display().lower(),
                "error": task.last_error,
                "attempts": task.attempts,
                "task_url": portal_url("admin:offboarding_task_change", task.pk),
                "run_url": portal_url("admin:offboarding_checklistrun_change", run.pk),
            },
        )
    return True
