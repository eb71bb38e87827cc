"""The lifecycle of an HR import: join runs for the people it adds, move runs for the people it moves.

Connected to `accounts.hooks.employees_imported` in `OffboardingConfig.ready()`; runs inside the
import's transaction, so a refused run rolls the whole import back with its reason.

`joiners_start` gives thousands of new people their join runs in a number of queries that grows
with the batches, not with the people: the same runs, tasks, dependencies, history rows, audit
events and queued tasks as `joiner.joiner_start` for each (a test compares the two field by field),
written with bulk inserts. Moves go one by one through `mover.mover_apply` (a move previews and
plans access per person).
"""

import datetime

from django.utils import timezone
from simple_history.utils import bulk_create_with_history

from accounts.models import EmployeeStatus
from offboarding import engine
from offboarding.engine import runs as engine_runs
from offboarding.flows import joiner, mover
from offboarding.flows.common import aware
from offboarding.models import Assignee, ChecklistKind, ChecklistRun, RunStatus, Task, TaskStatus
from portal.audit import audit_record_many
from portal.queue import enqueue_on_commit

BATCH = 500


def employees_imported(*, joiners: list, moves: list, acting_user, progress) -> None:
    """Start the joiners' join runs (`joiners_start`) and apply each move, telling `progress` as it goes."""
    for start in range(0, len(joiners), BATCH):
        batch = joiners[start : start + BATCH]
        joiners_start(employees=batch, acting_user=acting_user)
        progress(len(batch))
    pending = 0
    for employee, changes in moves:
        mover.mover_apply(employee=employee, changes=changes, acting_user=acting_user)
        pending += 1
        if pending == 100:
            progress(pending)
            pending = 0
    if pending:
        progress(pending)


def joiners_start(*, employees: list, acting_user) -> list[ChecklistRun]:
    """`joiner.joiner_start` for many new employees at once (inside the caller's transaction).

    Employees already given a join run, and terminated ones, are left out (as `joiner_start` returns
    the existing run or refuses). Returns the runs started.
    """
    employees = [e for e in employees if e.status != EmployeeStatus.TERMINATED]
    started = set(
        ChecklistRun.objects.filter(employee__in=employees, kind=ChecklistKind.JOIN)
        .exclude(status=RunStatus.CANCELLED)
        .values_list("employee_id", flat=True)
    )
    employees = [e for e in employees if e.pk not in started]
    if not employees:
        return []
    user = engine_runs.user_or_none(acting_user)
    runs = [
        ChecklistRun(
            employee=e,
            kind=ChecklistKind.JOIN,
            event_date=e.start_date,
            effective_at=aware(e.start_date),
            started_by=user,
            details={"role": e.role_id, "department": e.department_id},
        )
        for e in employees
    ]
    runs = bulk_create_with_history(runs, ChecklistRun, batch_size=BATCH, default_user=user)

    # The templates that apply depend on role, department, location and employment type only.
    templates: dict[tuple, list] = {}
    task_templates: dict[int, list] = {}
    now = timezone.now()
    tasks: list[Task] = []
    edges: list[tuple[Task, Task]] = []
    for run, employee in zip(runs, employees, strict=True):
        scope = (employee.role_id, employee.department_id, employee.location_id, employee.employment_type)
        if scope not in templates:
            templates[scope] = engine.templates_for(employee=employee, kind=ChecklistKind.JOIN)
        materialised: list[Task] = []
        for template in templates[scope]:
            if template.pk not in task_templates:
                task_templates[template.pk] = list(template.task_templates.prefetch_related("depends_on"))
            by_template = {}
            for tt in task_templates[template.pk]:
                task = Task(
                    run=run,
                    key=f"{template.pk}:{tt.key}",
                    template=tt,
                    title=tt.title,
                    instructions=tt.instructions,
                    knowledge_url=tt.knowledge_url,
                    assignee_type=tt.assignee,
                    assignee=engine_runs.assignee_for(tt.assignee, employee),
                    action=tt.action,
                    params=tt.params,
                    due_at=engine_runs.due_at_from_now(
                        run.effective_at + datetime.timedelta(days=tt.due_offset_days),
                        assignee_type=tt.assignee,
                        now=now,
                    ),
                    max_attempts=engine_runs._max_attempts(tt),
                )
                by_template[tt.pk] = task
                materialised.append(task)
            for tt in task_templates[template.pk]:
                edges.extend(
                    (by_template[tt.pk], by_template[d.pk]) for d in tt.depends_on.all() if d.pk in by_template
                )
        tasks.extend(materialised)
        # The core steps, as `flows.common.ensure_steps` gives them: a template's top-level task with the
        # step's action stands for it (the earliest due first), otherwise a `core:` task is added.
        existing: dict[str, Task] = {}
        for task in sorted(materialised, key=lambda t: t.due_at):  # stable: creation order breaks ties, like pk
            if task.action:
                existing.setdefault(task.action, task)
        by_key: dict[str, Task] = {}
        for step in joiner.JOINER_STEPS:
            needs = [by_key[key] for key in step.after]
            task = existing.get(step.action)
            if task is None:
                task = Task(
                    run=run,
                    key=f"core:{step.key}",
                    title=step.title[:200],
                    action=step.action,
                    params={},
                    assignee_type=Assignee.SYSTEM,
                    assignee=None,
                    due_at=engine_runs.due_at_from_now(
                        run.effective_at + datetime.timedelta(days=step.offset_days), assignee_type=Assignee.SYSTEM
                    ),
                    max_attempts=engine_runs._max_attempts(),
                )
                tasks.append(task)
            edges.extend((task, need) for need in needs)
            by_key[step.key] = task
    bulk_create_with_history(tasks, Task, batch_size=BATCH, default_user=user)
    through = Task.depends_on.through
    pairs = {(a.pk, b.pk) for a, b in edges}
    through.objects.bulk_create(
        [through(from_task_id=a, to_task_id=b) for a, b in sorted(pairs)], batch_size=BATCH, ignore_conflicts=True
    )
    audit_record_many(
        events=[
            (
                engine_runs.RUN_STARTED_ACTIONS[ChecklistKind.JOIN],
                run,
                {"employee": run.employee_id, "event_date": str(run.event_date)},
            )
            for run in runs
        ],
        acting_user=acting_user,
    )
    # What `run_advance` queues: runnable automated tasks (due, dependencies finished), after commit.
    now = timezone.now()
    due = [t.pk for t in tasks if t.assignee_type == Assignee.SYSTEM and t.action and t.due_at <= now]
    if due:
        ids = []
        for start in range(0, len(due), BATCH):
            ids.extend(
                engine.runnable_tasks(now=now)
                .filter(pk__in=due[start : start + BATCH], status=TaskStatus.PENDING)
                .values_list("pk", flat=True)
            )
        for task_id in engine_runs._mark_queued(ids, now):
            enqueue_on_commit(engine_runs.EXECUTE_TASK, task_id)
    return runs
