"""Reads of the lifecycle engine: progress of runs, overdue tasks, tasks due for a reminder.

Every function returns a queryset built in a constant number of queries (annotations and
subqueries, never a loop), so lists and the sweeper stay cheap however many runs there are.
A task is *finished* when done or skipped; it is *overdue* when not finished and its due time
has passed.
"""

import datetime
import re

from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from offboarding.models import (
    FINISHED_TASK_STATUSES,
    Assignee,
    ChecklistRun,
    RunStatus,
    Task,
    TaskStatus,
)


def _unfinished(prefix: str = "") -> Q:
    return ~Q(**{f"{prefix}status__in": FINISHED_TASK_STATUSES})


def task_open_dependencies(outer_ref: str = "pk") -> QuerySet:
    """Dependencies of the task `OuterRef(outer_ref)` that are not finished yet (for `Exists`)."""
    return Task.depends_on.through.objects.filter(from_task=OuterRef(outer_ref)).exclude(
        to_task__status__in=FINISHED_TASK_STATUSES
    )


def tasks_overdue(*, now: datetime.datetime | None = None) -> QuerySet:
    """Tasks of open runs that are not finished and whose due time has passed."""
    now = now or timezone.now()
    return Task.objects.filter(_unfinished(), due_at__lt=now, run__status=RunStatus.RUNNING)


def runs_overdue(*, now: datetime.datetime | None = None) -> QuerySet:
    """Open runs with at least one overdue task."""
    now = now or timezone.now()
    overdue = Task.objects.filter(_unfinished(), run=OuterRef("pk"), due_at__lt=now)
    return ChecklistRun.objects.filter(status=RunStatus.RUNNING).filter(Exists(overdue))


def runs_with_progress(*, now: datetime.datetime | None = None) -> QuerySet:
    """Runs annotated with `total_tasks`, `finished_tasks`, `failed_tasks`, `overdue_tasks`, and
    `blocked_task_title` / `blocked_task_error`: the first failed task's title and error (None
    when nothing failed); `run_blocked_by(run)` words them.

    One query with a single join to the tasks; overdue counts only open runs' tasks.
    """
    now = now or timezone.now()
    first_failed = Task.objects.filter(run=OuterRef("pk"), status=TaskStatus.FAILED).order_by("pk")
    return ChecklistRun.objects.annotate(
        total_tasks=Count("tasks"),
        finished_tasks=Count("tasks", filter=Q(tasks__status__in=FINISHED_TASK_STATUSES)),
        failed_tasks=Count("tasks", filter=Q(tasks__status=TaskStatus.FAILED)),
        overdue_tasks=Count(
            "tasks", filter=_unfinished("tasks__") & Q(tasks__due_at__lt=now, status=RunStatus.RUNNING)
        ),
        blocked_task_title=Subquery(first_failed.values("title")[:1]),
        blocked_task_error=Subquery(first_failed.values("last_error")[:1]),
    )


# "Attempt 5 of 5: " / "Attempt 1 of 5, not retried (...): " in front of a task's last error, and
# the module path of the exception's class ("accounts.connectors.base.ConnectorError" → "ConnectorError").
_ATTEMPT_PREFIX = re.compile(r"^Attempt \d+(?: of \d+)?[^:]*: (?:[A-Za-z_][\w]*\.)*(?=[A-Za-z_]\w*: )")
BLOCKED_ERROR_CHARS = 200


def run_blocked_by(run: ChecklistRun) -> str:
    """What blocks a run of `runs_with_progress`: "blocked by <task title>: <error>", or "" when no task failed.

    The error is shown without its attempt counter and its exception's module path, cut to
    `BLOCKED_ERROR_CHARS` characters; with more than one failed task, "(and n more)" follows the title.
    """
    title = getattr(run, "blocked_task_title", None)
    if not title:
        return ""
    error = _ATTEMPT_PREFIX.sub("", getattr(run, "blocked_task_error", None) or "").strip() or "no error recorded"
    if len(error) > BLOCKED_ERROR_CHARS:
        error = error[: BLOCKED_ERROR_CHARS - 1] + "…"
    more = (getattr(run, "failed_tasks", 1) or 1) - 1
    also = f" (and {more} more)" if more > 0 else ""
    return f"blocked by {title}{also}: {error}"


def runs_with_failed_tasks() -> QuerySet:
    """Runs with at least one failed task (waiting for IT to retry or skip it)."""
    return ChecklistRun.objects.filter(Exists(Task.objects.filter(run=OuterRef("pk"), status=TaskStatus.FAILED)))


def tasks_to_remind(*, now: datetime.datetime | None = None, interval: datetime.timedelta) -> QuerySet:
    """Overdue tasks a person must do now, not reminded within `interval`.

    Only tasks a person can act on: manual (not done by the system), pending, every dependency
    finished, in an open run. A task blocked by another is not nagged about; its blocker is.
    """
    now = now or timezone.now()
    return (
        tasks_overdue(now=now)
        .filter(status=TaskStatus.PENDING)
        .exclude(assignee_type=Assignee.SYSTEM)
        .filter(Q(last_reminded_at__isnull=True) | Q(last_reminded_at__lte=now - interval))
        .exclude(Exists(task_open_dependencies()))
    )


def tasks_for_assignee(*, employee) -> QuerySet:
    """Unfinished manual tasks assigned to `employee` in open runs (for self-service pages)."""
    return (
        Task.objects.filter(assignee=employee, run__status=RunStatus.RUNNING)
        .filter(_unfinished())
        .exclude(assignee_type=Assignee.SYSTEM)
        .select_related("run__employee")
        .order_by("due_at", "id")
    )
