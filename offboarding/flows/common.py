"""What the join and leave flows share: their core steps, local times, the hardware a person holds.

A run always holds its flow's core steps (`CoreStep`), whatever its templates say: a step no
template gave it is added with the key `core:<step>`, so no template can leave access in place.
"""

import datetime
from dataclasses import dataclass

from django.db.models import Q
from django.utils import timezone

from accounts.models import (
    Employee,
)
from assets.models import HELD_STATUSES
from offboarding import engine
from offboarding.models import (
    Assignee,
    ChecklistRun,
    Task,
)


def aware(day: datetime.date, at: datetime.time = datetime.time(9, 0)) -> datetime.datetime:
    """`day` at `at` (09:00 by default), local time."""
    return timezone.make_aware(datetime.datetime.combine(day, at))


def end_of_day(day: datetime.date) -> datetime.datetime:
    """The first moment after `day`, in local time: a future-dated leaver's cut-off."""
    return aware(day + datetime.timedelta(days=1), datetime.time(0, 0))


def held_by(employee: Employee) -> Q:
    """Hardware the employee holds (assigned, pending return or in transit): a filter on HardwareAsset."""
    return Q(assigned_to=employee, status__in=HELD_STATUSES)


@dataclass(frozen=True)
class CoreStep:
    """A step every run of a flow holds; `offset_days` from the run's effective time."""

    key: str
    title: str
    action: str
    offset_days: int = 0


def ensure_steps(run: ChecklistRun, steps: tuple[CoreStep, ...], *, chained: bool) -> None:
    """Add to `run` each core step no template gave it (key `core:<step>`); chained: each after the previous."""
    existing: dict[str, Task] = {}
    for task in run.tasks.filter(parent__isnull=True).exclude(action="").order_by("due_at", "pk"):
        existing.setdefault(task.action, task)
    previous = None
    for step in steps:
        task = existing.get(step.action)
        if task is None:
            task = engine.task_add(
                run=run,
                key=f"core:{step.key}",
                title=step.title,
                action=step.action,
                assignee_type=Assignee.SYSTEM,
                due_at=run.effective_at + datetime.timedelta(days=step.offset_days),
                depends_on=[previous] if chained and previous is not None else None,
            )
        previous = task
