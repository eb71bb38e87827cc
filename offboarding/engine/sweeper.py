"""The sweeper: runs every minute from the queue's scheduler and recovers what the queue lost.

It re-enqueues tasks stuck in `queued` or `running` (a Redis broker loses a task when a worker
dies), fails a task whose worker died on its last attempt (and tells IT), starts tasks whose
due time or backoff has come, and closes runs left with nothing to do. Safe to run concurrently.
"""

import datetime

from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from offboarding.conf import lifecycle_setting
from offboarding.engine.execution import task_failure_alert
from offboarding.engine.runs import EXECUTE_TASK, run_advance, run_close_if_finished, runnable_tasks
from offboarding.models import (
    FINISHED_TASK_STATUSES,
    Assignee,
    ChecklistRun,
    RunStatus,
    Task,
    TaskStatus,
)
from portal.queue import enqueue_each_on_commit

# How many rows one sweep handles per step; the next sweep (a minute later) takes the rest.
SWEEP_BATCH = 1000


def sweep(*, now: datetime.datetime | None = None) -> dict[str, int]:
    """Recover and start work. Runs every minute from the queue's scheduler; safe to run concurrently.

    - `queued` past QUEUED_DEADLINE: enqueued again (the broker lost it); the claim dedups.
    - `running` past RUNNING_DEADLINE (its worker died or timed out): enqueued again, and the
      claim takes over; on its last attempt it is failed instead, with that as its error.
    - a failed task of an open run that IT was not told of yet (failed above, or before alerts
      existed): IT is emailed, once (`task_failure_alert`).
    - pending automated tasks whose time and dependencies have come: queued.
    - open runs with nothing left to do: closed.
    """
    now = now or timezone.now()
    counts = {
        "requeued_queued": 0,
        "requeued_running": 0,
        "failed_stalled": 0,
        "alerted": 0,
        "started": 0,
        "closed": 0,
    }
    with transaction.atomic():
        lost = list(
            Task.objects.filter(status=TaskStatus.QUEUED, queued_at__lt=now - lifecycle_setting("QUEUED_DEADLINE"))
            .order_by()
            .values_list("pk", flat=True)[:SWEEP_BATCH]
        )
        requeued = [
            task_id
            for task_id in lost
            if Task.objects.filter(pk=task_id, status=TaskStatus.QUEUED).update(queued_at=now)
        ]
        enqueue_each_on_commit(EXECUTE_TASK, requeued)
        counts["requeued_queued"] = len(requeued)

        stalled = Task.objects.filter(
            status=TaskStatus.RUNNING, started_at__lt=now - lifecycle_setting("RUNNING_DEADLINE")
        ).order_by()
        out_of_attempts = list(
            stalled.filter(attempts__gte=F("max_attempts")).values_list("pk", "attempts")[:SWEEP_BATCH]
        )
        for task_id, attempts in out_of_attempts:
            counts["failed_stalled"] += stalled.filter(pk=task_id, attempts=attempts).update(
                status=TaskStatus.FAILED,
                last_error=(
                    f"Attempt {attempts}: the worker running this task stopped responding "
                    "(it timed out or crashed) and no attempts are left."
                ),
            )
        unalerted = Task.objects.filter(
            status=TaskStatus.FAILED, failure_alerted_at__isnull=True, run__status=RunStatus.RUNNING
        ).order_by()
        for task_id in unalerted.values_list("pk", flat=True)[:SWEEP_BATCH]:
            counts["alerted"] += task_failure_alert(task_id=task_id)
        # Left `running`: task_claim takes over a stale running task, so a late original delivery and
        # this one cannot both record an outcome.
        takeovers = list(stalled.filter(attempts__lt=F("max_attempts")).values_list("pk", flat=True)[:SWEEP_BATCH])
        enqueue_each_on_commit(EXECUTE_TASK, takeovers)
        counts["requeued_running"] = len(takeovers)

        run_ids = set(
            runnable_tasks(now=now)
            .filter(assignee_type=Assignee.SYSTEM, run__status=RunStatus.RUNNING)
            .exclude(action="")
            .values_list("run_id", flat=True)[:SWEEP_BATCH]
        )
        for run in ChecklistRun.objects.filter(pk__in=run_ids):
            counts["started"] += run_advance(run=run, now=now)

    unfinished = Task.objects.filter(run=OuterRef("pk")).exclude(status__in=FINISHED_TASK_STATUSES)
    idle = ChecklistRun.objects.filter(status=RunStatus.RUNNING).exclude(Exists(unfinished)).order_by()
    for run in idle[:SWEEP_BATCH]:
        counts["closed"] += run_close_if_finished(run=run)
    return counts
