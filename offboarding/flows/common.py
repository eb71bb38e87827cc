"""What the join and leave flows share: their core steps, local times, the hardware a person holds.

A run always holds its flow's core steps (`CoreStep`), whatever its templates say: a step no
template gave it is added with the key `core:<step>`, so no template can leave access in place,
and each core step waits for the core steps it needs (`CoreStep.after`), whoever made it.
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
    TaskStatus,
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
    """A step every run of a flow holds; `offset_days` from the run's effective time.

    `after` names the core steps (by key, earlier in the tuple) this one really needs finished
    first, and only those: a step that does not need another's outcome does not wait for it.
    """

    key: str
    title: str
    action: str
    offset_days: int = 0
    after: tuple[str, ...] = ()


def ensure_steps(run: ChecklistRun, steps: tuple[CoreStep, ...]) -> dict[str, Task]:
    """Give `run` each core step, waiting for the core steps it needs; returns the tasks by step key.

    A step a template gave the run (its top-level task with the step's action) is kept, with
    the template's own dependencies; one no template gave it is added (key `core:<step>`).
    Either way each step then waits for the steps in its `after`, so "login disabled before
    anything slower" holds whatever a template says. Idempotent: nothing is added twice.
    The missing steps are added in one `engine.task_add_many` call (a step waiting for another
    added with it names it by key). For a run just started (`engine.run_create`: its tasks are on
    `run.started_tasks`) the run's tasks are not read back.
    """
    started = getattr(run, "started_tasks", None)
    if started is not None:
        known = {task.key: task for task in started}
        top = sorted(
            (task for task in started if task.parent_id is None and task.action),
            key=lambda task: (task.due_at, task.pk),
        )
    else:
        known = None
        top = run.tasks.filter(parent__isnull=True).exclude(action="").order_by("due_at", "pk")
    existing: dict[str, Task] = {}
    for task in top:
        existing.setdefault(task.action, task)
    by_key: dict[str, Task] = {}
    added: dict[str, str] = {}  # step key -> key of the task added for it
    batch: list[dict] = []
    edges: list[tuple[int, int]] = []
    unqueue: list[int] = []
    for step in steps:
        needs = [added.get(key) or by_key[key] for key in step.after]
        task = existing.get(step.action)
        if task is None:
            item = {
                "key": f"core:{step.key}",
                "title": step.title,
                "action": step.action,
                "assignee_type": Assignee.SYSTEM,
                "due_at": run.effective_at + datetime.timedelta(days=step.offset_days),
                "depends_on": needs or None,
            }
            batch.append(item)
            added[step.key] = item["key"]
            continue
        if needs:
            if any(isinstance(need, str) for need in needs):
                # It waits for a step not added yet: add the batch first (rare: a template kept a step
                # whose prerequisite no template gave).
                _add(run, batch, added, by_key, known)
                needs = [by_key[key] for key in step.after]
            edges.extend((task.pk, need.pk) for need in needs)
            if any(not need.is_finished for need in needs) and (started is None or task.status == TaskStatus.QUEUED):
                # Queued by `run_start` before this step had to wait: back to pending, before
                # commit (nothing was sent yet); the delivery finds nothing to claim.
                unqueue.append(task.pk)
        by_key[step.key] = task
    if edges:  # one insert; a pair already there is kept as is
        Through = Task.depends_on.through
        Through.objects.bulk_create(
            [Through(from_task_id=a, to_task_id=b) for a, b in sorted(set(edges))], ignore_conflicts=True
        )
    if unqueue:
        Task.objects.filter(pk__in=unqueue, status=TaskStatus.QUEUED).update(status=TaskStatus.PENDING, queued_at=None)
    _add(run, batch, added, by_key, known)
    return {step.key: by_key[step.key] for step in steps}


def _add(run: ChecklistRun, batch: list[dict], added: dict, by_key: dict, known: dict | None) -> None:
    """Add the batched core steps in one `task_add_many` and record their tasks by step key."""
    if not batch:
        return
    tasks = engine.task_add_many(run=run, tasks=list(batch), known=known)
    by_task_key = {task.key: task for task in tasks}
    for step_key, task_key in list(added.items()):
        if task_key in by_task_key:
            by_key[step_key] = by_task_key[task_key]
            del added[step_key]
    if known is not None:
        known.update(by_task_key)
    batch.clear()


def wait_for_children(task: Task, children: list[Task]) -> None:
    """Tasks that wait for `task` (a fan-out step) wait for each of its `children` too.

    One insert however many children; a pair already there (a second delivery) is kept as is.
    """
    if not children:
        return
    Through = Task.depends_on.through
    downstream = list(Through.objects.filter(to_task=task).values_list("from_task_id", flat=True))
    child_ids = {child.pk for child in children}
    Through.objects.bulk_create(
        [
            Through(from_task_id=waiting, to_task_id=child_id)
            for waiting in downstream
            if waiting not in child_ids
            for child_id in child_ids
        ],
        ignore_conflicts=True,
    )
