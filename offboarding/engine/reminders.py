"""Overdue manual tasks are reminded by email, at most every `REMINDER_INTERVAL_DAYS` per task.

One email per recipient (the assigned person, or the IT team) lists all their overdue tasks.
"""

import datetime
import logging
from collections import defaultdict

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from accounts.models import EmployeeStatus
from offboarding import selectors
from offboarding.conf import lifecycle_setting
from offboarding.engine.sweeper import SWEEP_BATCH
from offboarding.models import (
    Assignee,
    Task,
)
from portal.mail import email_send, portal_url

logger = logging.getLogger(__name__)


def _reminder_recipient(task: Task) -> tuple[str, bool]:
    """Where a reminder about `task` goes: (address, is the IT team).

    The assigned person's work email; a person who has left (their work mailbox is closed) is
    written to at their personal email; tasks for IT, or for nobody reachable, go to the IT team.
    """
    person = task.assignee if task.assignee_type != Assignee.IT else None
    if person is not None and person.anonymised_at is None:
        if person.status != EmployeeStatus.TERMINATED and person.work_email:
            return person.work_email, False
        if person.personal_email:
            return person.personal_email, False
    return settings.IT_TEAM_EMAIL, True


def _task_link(task: Task, *, for_it: bool) -> str:
    return portal_url("admin:offboarding_task_change", task.pk) if for_it else portal_url("home")


def tasks_remind_overdue(*, now: datetime.datetime | None = None) -> dict[str, int]:
    """Email each person (or the IT team) the overdue tasks they must do; returns counts.

    A task is reminded at most once every `REMINDER_INTERVAL_DAYS`, however often or
    concurrently this runs: each reminder is claimed first with a conditional update of
    `last_reminded_at`. One email per recipient lists all their overdue tasks. If sending fails,
    the claims are released so the next run tries again.
    """
    now = now or timezone.now()
    interval = datetime.timedelta(days=lifecycle_setting("REMINDER_INTERVAL_DAYS"))
    due = Q(last_reminded_at__isnull=True) | Q(last_reminded_at__lte=now - interval)
    candidates = (
        selectors.tasks_to_remind(now=now, interval=interval)
        .select_related("run__employee", "assignee")
        .order_by("due_at", "id")[:SWEEP_BATCH]
    )
    by_recipient: dict[tuple[str, bool], list[Task]] = defaultdict(list)
    for task in candidates:
        if Task.objects.filter(due, pk=task.pk).update(last_reminded_at=now):
            by_recipient[_reminder_recipient(task)].append(task)
    counts = {"emails": 0, "tasks": 0, "errors": 0}
    for (address, for_it), tasks in by_recipient.items():
        items = [
            {
                "task": task,
                "employee": task.run.employee.full_name,
                "kind": task.run.get_kind_display().lower(),
                "due_at": task.due_at,
                "days_overdue": (now - task.due_at).days,
                "url": _task_link(task, for_it=for_it),
            }
            for task in tasks
        ]
        context = {
            "for_it": for_it,
            "recipient_name": None if for_it else tasks[0].assignee.full_name,
            "items": items,
            "portal_url": settings.PORTAL_BASE_URL,
        }
        try:
            _send(address=address, count=len(tasks), context=context)
        except Exception:  # noqa: BLE001 - one bad address or a mail outage must not stop the others
            logger.exception("Could not send the overdue reminder to %s", address)
            for task in tasks:
                Task.objects.filter(pk=task.pk, last_reminded_at=now).update(last_reminded_at=task.last_reminded_at)
            counts["errors"] += 1
            continue
        counts["emails"] += 1
        counts["tasks"] += len(tasks)
    return counts


def _send(*, address: str, count: int, context: dict) -> None:
    """One overdue reminder: `emails/task_overdue.txt` (subject on its first line) with `task_overdue.html`."""
    # No reply-to: the reminder goes to IT itself too, and never had one.
    email_send(template="task_overdue", to=[address], context={**context, "count": count}, html=True, reply_to_it=False)
