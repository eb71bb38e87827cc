"""People acting on tasks: someone completes a manual (or handed-off) task; IT retries or skips one.

Each is refused with a ValidationError saying why (wrong status, run not open, open
dependencies, no reason given); the reason and who acted are kept in history and, for retry
and skip, in the audit log. Each advances the run afterwards.
"""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.services import reviews
from offboarding.engine.execution import action_registry
from offboarding.engine.runs import run_advance, user_or_none
from offboarding.models import (
    FINISHED_TASK_STATUSES,
    Assignee,
    RunStatus,
    Task,
    TaskStatus,
)
from portal.audit import audit_record
from portal.history import set_history_user
from portal.limits import text_limit_check
from portal.models import AuditEvent


def _describe(task: Task) -> str:
    return f"“{task.title}” is {task.get_status_display().lower()}"


@transaction.atomic
def task_complete(*, task: Task, acting_user, note: str = "") -> Task:
    """A person marks a manual (or handed-off) task done. Idempotent for a task already done.

    Refused for an automated task, a task not pending, a task of a run that is not open, or
    one whose dependencies are not finished. Calls the action's `on_manual_complete` hook
    (e.g. confirming a revocation done by hand) in the same transaction.
    """
    text_limit_check(Task, "note", note)
    task = Task.objects.select_for_update().select_related("run").get(pk=task.pk)
    if task.status == TaskStatus.DONE:
        return task
    if task.status != TaskStatus.PENDING or task.assignee_type == Assignee.SYSTEM:
        raise ValidationError(f"{_describe(task)}; it cannot be completed by hand.")
    if task.run.status != RunStatus.RUNNING:
        raise ValidationError(f"“{task.title}” belongs to a run that is {task.run.get_status_display().lower()}.")
    open_deps = list(task.depends_on.exclude(status__in=FINISHED_TASK_STATUSES))
    if open_deps:
        raise ValidationError(f"“{task.title}” waits for: {', '.join(t.title for t in open_deps)}. Finish those first.")
    action = action_registry().get(task.action)
    if action is not None and action.on_manual_complete is not None:
        action.on_manual_complete(task, acting_user)
    task.status = TaskStatus.DONE
    task.completed_at = timezone.now()
    task.completed_by = user_or_none(acting_user)
    task.note = note
    set_history_user(task, acting_user)
    task.save(update_fields=["status", "completed_at", "completed_by", "note"])
    run_advance(run=task.run)
    return task


@transaction.atomic
def task_retry(*, task: Task, acting_user, reason: str) -> Task:
    """IT sends a failed task back to the queue with a fresh set of attempts; the reason is kept in history.

    The failure alert's mark is cleared: if the task fails for good again, IT is told again.
    """
    if not reason.strip():
        raise ValidationError("Give a reason for the retry.")
    text_limit_check(Task, "note", reason)
    task = Task.objects.select_for_update().select_related("run").get(pk=task.pk)
    if task.status != TaskStatus.FAILED:
        raise ValidationError(f"{_describe(task)}, not failed; nothing to retry.")
    if task.run.status != RunStatus.RUNNING:
        raise ValidationError(f"“{task.title}” belongs to a run that is {task.run.get_status_display().lower()}.")
    task.status = TaskStatus.PENDING
    task.attempts = 0
    task.not_before = None
    task.failure_alerted_at = None
    task.note = reason
    set_history_user(task, acting_user)
    task.save(update_fields=["status", "attempts", "not_before", "failure_alerted_at", "note"])
    audit_record(
        action=AuditEvent.Action.TASK_RETRIED,
        target=task,
        acting_user=acting_user,
        detail={"run": task.run_id, "reason": reason},
    )
    run_advance(run=task.run)
    return task


@transaction.atomic
def task_skip(*, task: Task, acting_user, reason: str) -> Task:
    """IT skips a task that will not be done (failed or pending), with a reason kept in history.

    Tasks that depend on it may then run: skipped counts as finished.
    """
    if not reason.strip():
        raise ValidationError("Give a reason for skipping.")
    text_limit_check(Task, "note", reason)
    task = Task.objects.select_for_update().select_related("run").get(pk=task.pk)
    if task.status not in (TaskStatus.FAILED, TaskStatus.PENDING):
        raise ValidationError(f"{_describe(task)}; only a failed or pending task can be skipped.")
    task.status = TaskStatus.SKIPPED
    task.completed_at = timezone.now()
    task.completed_by = user_or_none(acting_user)
    task.note = reason
    set_history_user(task, acting_user)
    task.save(update_fields=["status", "completed_at", "completed_by", "note"])
    audit_record(
        action=AuditEvent.Action.TASK_SKIPPED,
        target=task,
        acting_user=acting_user,
        detail={"run": task.run_id, "reason": reason},
    )
    if task.params.get("review_item"):  # an access review's decision will not be applied: its item says so
        reviews.review_item_record_failed(item_id=task.params["review_item"], error=f"Skipped by IT: {reason}")
    run_advance(run=task.run)
    return task
