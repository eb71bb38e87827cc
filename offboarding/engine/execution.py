"""Running an automated task: claim it, call its action, record the outcome or the failure.

A task is claimed with one conditional update (`queued → running`, or a `running` task whose
worker has been silent past the deadline); a second delivery finds nothing to claim, and a late
original delivery cannot record an outcome over the one that took over. A failing action is
retried with exponential backoff up to the task's `max_attempts`, then `failed` with its error
for IT. Nothing here holds a transaction open while an action talks to an outside system.
"""

import datetime
import logging
import traceback

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from offboarding.conf import lifecycle_setting
from offboarding.engine.runs import assignee_for, run_advance
from offboarding.models import (
    Task,
    TaskStatus,
)

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
    deliveries cannot both win. Counts an attempt.
    """
    now = now or timezone.now()
    claimed = (
        # Conditions on the task row only: a join would turn this into `id IN (subquery)`, whose
        # conditions PostgreSQL does not re-check after waiting for a concurrent claim's row lock.
        Task.objects.filter(pk=task_id)
        .filter(_claimable(now))
        .update(status=TaskStatus.RUNNING, started_at=now, attempts=F("attempts") + 1)
    )
    if not claimed:
        return None
    # The run only: actions read the employee they need themselves (`run.employee` loads on first use,
    # e.g. for a hand-off); joining two Employee rows here cost more than the rest of a no-op task.
    return Task.objects.select_related("run").get(pk=task_id)


def task_execute(*, task_id: int) -> str:
    """Run one automated task: claim, act, record the outcome, advance the run.

    Returns the outcome: "done", "handed-off", "retry", "failed", "not-claimed" (another
    delivery has it, or nothing to do) or "superseded" (a worker that took over this one's
    stale claim records the outcome instead).
    """
    task = task_claim(task_id=task_id)
    if task is None:
        return "not-claimed"
    from offboarding.actions import Handoff

    action = action_registry().get(task.action)
    try:
        if action is None:
            raise ValidationError(f"Unknown action {task.action!r}.")
        outcome = action.func(task)
        if outcome is not None and not isinstance(outcome, dict | Handoff):
            raise TypeError(f"Action {task.action!r} returned {type(outcome).__name__}, not a dict or Handoff.")
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
        else:
            updated = mine.update(
                status=TaskStatus.DONE, completed_at=timezone.now(), result=outcome or {}, last_error=""
            )
            result = "done"
        if updated:
            run_advance(run=task.run)
        return result if updated else "superseded"


def _task_failed(task: Task, exc: Exception) -> str:
    message = str(exc) or exc.__class__.__name__
    logger.warning("Task %s (%s) failed on attempt %s: %s", task.pk, task.action, task.attempts, message)
    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    detail = f"Attempt {task.attempts} of {task.max_attempts}: {detail}"[:4000]
    if task.attempts >= task.max_attempts:
        fields = {"status": TaskStatus.FAILED, "last_error": detail, "not_before": None}
        outcome = "failed"
    else:
        fields = {
            "status": TaskStatus.PENDING,
            "last_error": detail,
            "not_before": timezone.now() + _backoff(task.attempts),
        }
        outcome = "retry"
    updated = Task.objects.filter(pk=task.pk, status=TaskStatus.RUNNING, started_at=task.started_at).update(**fields)
    return outcome if updated else "superseded"
