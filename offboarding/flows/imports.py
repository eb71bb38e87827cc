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

from accounts.event_data import employee_data
from accounts.models import Employee, EmployeeStatus
from offboarding import engine
from offboarding.engine import runs as engine_runs
from offboarding.flows import joiner, mover
from offboarding.flows.common import aware
from offboarding.models import Assignee, ChecklistKind, ChecklistRun, RunStatus, Task, TaskStatus
from portal.audit import audit_record_many
from portal.bulk import history_insert, rows_insert
from portal.events import event_emit_many
from portal.models import EventType
from portal.queue import enqueue_each_on_commit

BATCH = 500


def employees_imported(*, joiners: list, moves: list, acting_user, progress) -> None:
    """Start the joiners' join runs (`joiners_start`) and apply each move, telling `progress` as it goes."""
    templates: dict = {}  # read once for the whole import, not once per batch
    for start in range(0, len(joiners), BATCH):
        batch = joiners[start : start + BATCH]
        joiners_start(employees=batch, acting_user=acting_user, templates=templates)
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


def joiners_start(*, employees: list, acting_user, templates: dict | None = None) -> list[ChecklistRun]:
    """`joiner.joiner_start` for many new employees at once (inside the caller's transaction).

    `templates` (optional, an empty dict at first) keeps the checklist templates read for one batch
    for the next batches of the same transaction.

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
    runs = rows_insert(runs)
    history_insert(ChecklistRun, runs, acting_user=user)

    # The templates that apply depend on role, department, location and employment type only.
    templates = {} if templates is None else templates
    by_scope: dict[tuple, list] = templates.setdefault("by_scope", {})
    task_templates: dict[int, list] = templates.setdefault("task_templates", {})
    now = timezone.now()
    tasks: list[Task] = []
    edges: list[tuple[Task, Task]] = []
    for run, employee in zip(runs, employees, strict=True):
        scope = (employee.role_id, employee.department_id, employee.location_id, employee.employment_type)
        if scope not in by_scope:
            by_scope[scope] = engine.templates_for(employee=employee, kind=ChecklistKind.JOIN)
        materialised: list[Task] = []
        for template in by_scope[scope]:
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
    rows_insert(tasks)
    history_insert(Task, tasks, acting_user=user)
    through = Task.depends_on.through
    pairs = {(a.pk, b.pk) for a, b in edges}
    through.objects.bulk_create(
        [through(from_task_id=a, to_task_id=b) for a, b in sorted(pairs)], batch_size=BATCH, ignore_conflicts=True
    )

    def joined() -> list[dict]:  # as `joiner_start` tells subscribers, from the rows as saved
        saved = Employee.objects.select_related("department", "location", "role", "manager").in_bulk(
            [run.employee_id for run in runs]
        )
        return [{**employee_data(saved[run.employee_id]), "run": run.pk} for run in runs]

    event_emit_many(event_type=EventType.EMPLOYEE_JOINED, data=joined)
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
        enqueue_each_on_commit(engine_runs.EXECUTE_TASK, engine_runs._mark_queued(ids, now))  # one broker write
    return runs
