"""The lifecycle engine: start a run, materialise its tasks, run them, recover from crashes.

Guarantees:
- Tasks are materialised once: `(run, key)` is unique, so starting or fanning out again
  creates nothing twice. At most one open run of each kind per employee, under concurrency too.
- Only ids travel to the queue, after commit (`portal.queue.enqueue_on_commit`).
- A task is claimed with a conditional update (`queued → running`, or a `running` task whose
  worker has been silent past the deadline); a second delivery finds nothing to claim, and a
  late original delivery cannot record an outcome over the one that took over.
- A task waits for every task it depends on to be done or skipped, and for its due time.
- A failing action is retried with exponential backoff up to `max_attempts` (from its
  template, else `LIFECYCLE["MAX_ATTEMPTS"]`), then `failed` with its error, for IT to retry
  or skip with a reason (kept in history, with who did it).
- The sweeper re-enqueues tasks stuck in `queued` or `running` (a Redis broker loses a task
  when a worker dies), fails a task whose worker died on its last attempt, starts tasks whose
  due time or backoff has come, and closes runs left with nothing to do.
- Overdue manual tasks are reminded by email, at most every `REMINDER_INTERVAL_DAYS` per task.
- Figures: time to provision (join: event → run done), time to deprovision (leave:
  event → last revocation confirmed, which actions report through `run_record_revocation`).

Nothing here holds a database transaction open while an action talks to an outside system.
"""

import datetime
import logging
import traceback
from collections import defaultdict

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from simple_history.utils import bulk_create_with_history

from accounts.models import Employee, EmployeeStatus
from offboarding import selectors
from offboarding.models import (
    FINISHED_TASK_STATUSES,
    Assignee,
    ChecklistKind,
    ChecklistRun,
    ChecklistTemplate,
    RunStatus,
    Task,
    TaskStatus,
    TaskTemplate,
)
from portal.audit import audit_record
from portal.history import set_history_user
from portal.models import AuditEvent
from portal.queue import enqueue_on_commit

logger = logging.getLogger(__name__)

EXECUTE_TASK = "offboarding.tasks.task_execute"
# How many rows one sweep handles per step; the next sweep (a minute later) takes the rest.
SWEEP_BATCH = 1000
# The audit action recorded when a run of each checklist kind starts (one typed action per kind).
RUN_STARTED_ACTIONS = {
    ChecklistKind.JOIN: AuditEvent.Action.JOIN_STARTED,
    ChecklistKind.MOVE: AuditEvent.Action.MOVE_STARTED,
    ChecklistKind.LEAVE: AuditEvent.Action.LEAVE_STARTED,
    ChecklistKind.ACCESS: AuditEvent.Action.ACCESS_STARTED,
}


def engine_setting(name: str):
    """A setting of the engine: `settings.LIFECYCLE[name]`, else its default below."""
    defaults = {
        # A claimed task whose worker is silent this long is presumed dead (must exceed Q timeout).
        "RUNNING_DEADLINE": datetime.timedelta(seconds=settings.Q_CLUSTER["timeout"] + 30),
        # A queued task not picked up this long is presumed lost by the broker.
        "QUEUED_DEADLINE": datetime.timedelta(seconds=settings.Q_CLUSTER.get("retry", 90) + 30),
        "BACKOFF_BASE": datetime.timedelta(seconds=30),
        "BACKOFF_MAX": datetime.timedelta(hours=1),
        # Tries of an automated action before its task is failed (a template may say otherwise).
        "MAX_ATTEMPTS": 5,
        # A task is reminded at most this often, in days.
        "REMINDER_INTERVAL_DAYS": 2,
    }
    return getattr(settings, "LIFECYCLE", {}).get(name, defaults[name])


def _registry():
    # Imported when used, not at module level: action modules import this one.
    from offboarding.actions import registry

    return registry


def _user_or_none(acting_user):
    return acting_user if getattr(acting_user, "pk", None) else None


# --- Templates -------------------------------------------------------------------------


def templates_for(*, employee: Employee, kind: str) -> list[ChecklistTemplate]:
    """Active templates of `kind` whose scopes (empty = all) include the employee."""
    candidates = ChecklistTemplate.objects.filter(kind=kind, is_active=True).prefetch_related(
        "roles", "departments", "locations"
    )
    chosen = []
    for template in candidates:
        scopes = (
            (template.roles.all(), employee.role_id),
            (template.departments.all(), employee.department_id),
            (template.locations.all(), employee.location_id),
        )
        if any(items and value not in {item.pk for item in items} for items, value in scopes):
            continue
        if template.employment_types and employee.employment_type not in template.employment_types:
            continue
        chosen.append(template)
    return chosen


def dependency_cycle(edges: dict, names: dict | None = None) -> list[str] | None:
    """A cycle in the graph `{node: [nodes it depends on]}`, as names from first to itself, or None."""
    names = names or {}
    state: dict = {}  # 1: on the current path, 2: explored
    for start in edges:
        if start in state:
            continue
        # Iterative depth-first search (a long chain of steps must not hit the recursion limit).
        path = [start]
        iterators = [iter(edges.get(start, ()))]
        state[start] = 1
        while iterators:
            node = next(iterators[-1], None)
            if node is None:
                state[path.pop()] = 2
                iterators.pop()
                continue
            if state.get(node) == 1:
                cycle = path[path.index(node) :] + [node]
                return [str(names.get(n, n)) for n in cycle]
            if node not in state:
                state[node] = 1
                path.append(node)
                iterators.append(iter(edges.get(node, ())))
    return None


def template_dependency_cycle(template: ChecklistTemplate) -> list[str] | None:
    """The keys of a dependency cycle among the template's saved tasks, or None."""
    edges, names = {}, {}
    for task in template.task_templates.prefetch_related("depends_on"):
        names[task.pk] = task.key
        edges[task.pk] = [dep.pk for dep in task.depends_on.all()]
    return dependency_cycle(edges, names)


def template_validate(*, template: ChecklistTemplate) -> None:
    """Raise ValidationError naming the problem if the template's saved tasks cannot run.

    Problems: a dependency cycle, a dependency on another checklist's task, and anything a
    task's own `full_clean()` refuses (an unknown action, a system task without action ...).
    """
    cycle = template_dependency_cycle(template)
    if cycle:
        raise ValidationError(f"The tasks depend on each other in a cycle: {' → '.join(cycle)}.")
    for task in template.task_templates.prefetch_related("depends_on"):
        foreign = [d.key for d in task.depends_on.all() if d.checklist_id != template.pk]
        if foreign:
            raise ValidationError(f"Task {task.key!r} depends on tasks of another checklist: {', '.join(foreign)}.")
        try:
            task.full_clean()
        except ValidationError as exc:
            raise ValidationError(f"Task {task.key!r}: {' '.join(exc.messages)}") from exc


# --- Starting a run --------------------------------------------------------------------


def _assignee_for(assignee_type: str, employee: Employee) -> Employee | None:
    if assignee_type == Assignee.EMPLOYEE:
        return employee
    if assignee_type == Assignee.MANAGER:
        return employee.manager
    return None


def _due_at(effective_at: datetime.datetime, offset_days: int) -> datetime.datetime:
    return effective_at + datetime.timedelta(days=offset_days)


@transaction.atomic
def run_start(
    *,
    employee: Employee,
    kind: str,
    event_date: datetime.date,
    acting_user,
    effective_at: datetime.datetime | None = None,
    details: dict | None = None,
) -> ChecklistRun:
    """Start (or return the already open) run of `kind` for `employee` and materialise its tasks.

    `effective_at` defaults to 09:00 local time on `event_date`. Idempotent under concurrency:
    the employee row lock (PostgreSQL) and the unique open-run constraint make a second,
    concurrent start return the first run instead of creating another. The runnable automated
    tasks are queued after commit. The run is not closed here, even with no task: a flow may
    add its own tasks (`task_add`) right after, then call `run_advance`, which closes a run
    with nothing left to do (as the sweeper does for one nobody advances).
    """
    if kind not in ChecklistKind.values:
        raise ValidationError(f"Unknown checklist kind {kind!r}.")
    employee = Employee.objects.select_for_update(of=("self",)).select_related("manager").get(pk=employee.pk)
    existing = ChecklistRun.objects.filter(employee=employee, kind=kind, status=RunStatus.RUNNING).first()
    if existing is not None:
        return existing
    if effective_at is None:
        effective_at = timezone.make_aware(datetime.datetime.combine(event_date, datetime.time(9, 0)))
    run = ChecklistRun(
        employee=employee,
        kind=kind,
        event_date=event_date,
        effective_at=effective_at,
        started_by=_user_or_none(acting_user),
        details=details or {},
    )
    set_history_user(run, acting_user)
    try:
        with transaction.atomic():
            run.save()
    except IntegrityError:
        # Lost a race with a concurrent start (possible where the row lock above is a no-op).
        return ChecklistRun.objects.get(employee=employee, kind=kind, status=RunStatus.RUNNING)
    for template in templates_for(employee=employee, kind=kind):
        _materialise(run, template)
    audit_record(
        action=RUN_STARTED_ACTIONS[kind],
        target=run,
        acting_user=acting_user,
        detail={"employee": employee.pk, "event_date": str(event_date)},
    )
    _queue_runnable(run, timezone.now())
    return run


def _max_attempts(template: TaskTemplate | None = None) -> int:
    if template is not None and template.max_attempts:
        return template.max_attempts
    return int(engine_setting("MAX_ATTEMPTS"))


def _materialise(run: ChecklistRun, template: ChecklistTemplate) -> None:
    task_templates = list(template.task_templates.prefetch_related("depends_on"))
    by_template: dict[int, Task] = {}
    for tt in task_templates:
        key = f"{template.pk}:{tt.key}"
        task, _ = Task.objects.get_or_create(
            run=run,
            key=key,
            defaults={
                "template": tt,
                "title": tt.title,
                "instructions": tt.instructions,
                "knowledge_url": tt.knowledge_url,
                "assignee_type": tt.assignee,
                "assignee": _assignee_for(tt.assignee, run.employee),
                "action": tt.action,
                "params": tt.params,
                "due_at": _due_at(run.effective_at, tt.due_offset_days),
                "max_attempts": _max_attempts(tt),
            },
        )
        by_template[tt.pk] = task
    for tt in task_templates:
        deps = [by_template[d.pk] for d in tt.depends_on.all() if d.pk in by_template]
        if deps:
            by_template[tt.pk].depends_on.add(*deps)


def task_add(
    *,
    run: ChecklistRun,
    key: str,
    title: str,
    action: str = "",
    params: dict | None = None,
    assignee_type: str = Assignee.SYSTEM,
    assignee: Employee | None = None,
    due_at: datetime.datetime | None = None,
    parent: Task | None = None,
    depends_on: list[Task] | None = None,
    instructions: str = "",
    knowledge_url: str = "",
    max_attempts: int | None = None,
) -> Task:
    """Add one task to an open run (e.g. a fan-out child). Idempotent on `(run, key)`.

    Refused (ValidationError) for a run that is not open, an unknown action, a system task
    without an action, or a parent or dependency from another run. The task is not queued
    here: the run's next `run_advance` does it (the parent's completion, or the sweeper).
    """
    _task_add_check(run=run, action=action, assignee_type=assignee_type, parent=parent, depends_on=depends_on)
    existing = Task.objects.filter(run=run, key=key).first()
    if existing is not None:
        return existing
    if not ChecklistRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).exists():
        raise ValidationError(f"{run} is not open; no task can be added to it.")
    task, created = Task.objects.get_or_create(
        run=run,
        key=key,
        defaults=_task_fields(
            run=run,
            title=title,
            action=action,
            params=params,
            assignee_type=assignee_type,
            assignee=assignee,
            due_at=due_at,
            parent=parent,
            instructions=instructions,
            knowledge_url=knowledge_url,
            max_attempts=max_attempts,
        ),
    )
    if created and depends_on:
        task.depends_on.add(*depends_on)
    return task


def _task_add_check(*, run: ChecklistRun, action: str, assignee_type: str, parent, depends_on) -> None:
    """The refusals of `task_add` (ValidationError), checked without a query."""
    if action and action not in _registry():
        raise ValidationError(f"Unknown action {action!r}; choose one of {', '.join(sorted(_registry()))}.")
    if assignee_type == Assignee.SYSTEM and not action:
        raise ValidationError("A task done by the system needs an automated action.")
    if assignee_type not in Assignee.values:
        raise ValidationError(f"Unknown assignee type {assignee_type!r}.")
    others = [t for t in [parent, *(depends_on or [])] if t is not None and t.run_id != run.pk]
    if others:
        raise ValidationError(f"Tasks of another run cannot be parent or dependency: {', '.join(map(str, others))}.")


def _task_fields(
    *,
    run: ChecklistRun,
    title: str,
    action: str = "",
    params: dict | None = None,
    assignee_type: str = Assignee.SYSTEM,
    assignee: Employee | None = None,
    due_at: datetime.datetime | None = None,
    parent: Task | None = None,
    instructions: str = "",
    knowledge_url: str = "",
    max_attempts: int | None = None,
) -> dict:
    """The field values of a new task added with `task_add`'s arguments (its defaults applied)."""
    return {
        "title": title[:200],
        "action": action,
        "params": params or {},
        "assignee_type": assignee_type,
        "assignee": assignee if assignee is not None else _assignee_for(assignee_type, run.employee),
        "due_at": due_at or timezone.now(),
        "parent": parent,
        "instructions": instructions,
        "knowledge_url": knowledge_url,
        "max_attempts": max_attempts or _max_attempts(),
    }


def task_add_many(*, run: ChecklistRun, tasks: list[dict]) -> list[Task]:
    """Add several tasks to an open run at once (a fan-out); each item holds `task_add`'s arguments.

    Same rules and guarantees as calling `task_add` for each item, in order (idempotent on
    `(run, key)`; the first of two items with one key wins; history rows written; refused as
    `task_add` refuses), but in a constant number of queries however many tasks: one read of
    the keys already there, one check that the run is open, one insert of the tasks, one of
    their history rows and one of their dependencies. Returns the tasks in the order given.
    If a concurrent caller adds one of the keys meanwhile, falls back to `task_add` per item.
    """
    for item in tasks:
        _task_add_check(
            run=run,
            action=item.get("action", ""),
            assignee_type=item.get("assignee_type", Assignee.SYSTEM),
            parent=item.get("parent"),
            depends_on=item.get("depends_on"),
        )
    if not tasks:
        return []
    by_key = {task.key: task for task in Task.objects.filter(run=run, key__in={item["key"] for item in tasks})}
    new_items: dict[str, dict] = {}
    for item in tasks:
        if item["key"] not in by_key:
            new_items.setdefault(item["key"], item)
    if new_items:
        if not ChecklistRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).exists():
            raise ValidationError(f"{run} is not open; no task can be added to it.")
        fresh = [
            Task(
                run=run,
                key=key,
                **_task_fields(run=run, **{k: v for k, v in item.items() if k not in ("key", "depends_on")}),
            )
            for key, item in new_items.items()
        ]
        try:
            with transaction.atomic():
                created = bulk_create_with_history(fresh, Task)
                Through = Task.depends_on.through
                Through.objects.bulk_create(
                    [
                        Through(from_task_id=task.pk, to_task_id=dep.pk)
                        for task in created
                        for dep in {d.pk: d for d in new_items[task.key].get("depends_on") or []}.values()
                    ]
                )
        except IntegrityError:
            # A concurrent caller added one of these keys: one by one, each returns what is there.
            return [task_add(run=run, **item) for item in tasks]
        by_key.update((task.key, task) for task in created)
    return [by_key[item["key"]] for item in tasks]


# --- Advancing --------------------------------------------------------------------------


def runnable_tasks(*, run: ChecklistRun | None = None, now: datetime.datetime | None = None):
    """Pending tasks whose dependencies are all finished and whose time (due, backoff) has come."""
    now = now or timezone.now()
    qs = Task.objects.filter(status=TaskStatus.PENDING, due_at__lte=now).filter(
        Q(not_before__isnull=True) | Q(not_before__lte=now)
    )
    if run is not None:
        qs = qs.filter(run=run)
    return qs.exclude(Exists(selectors.task_open_dependencies())).order_by()


def run_advance(*, run: ChecklistRun, now: datetime.datetime | None = None) -> int:
    """Queue the run's runnable automated tasks (after commit) and close the run when all is finished.

    Returns how many tasks were queued. Safe to call any number of times, from anywhere; does
    nothing for a run that is no longer open (done or cancelled).
    """
    now = now or timezone.now()
    if not ChecklistRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).exists():
        return 0
    queued = _queue_runnable(run, now)
    if not queued:  # a task just queued is unfinished: the run cannot be
        run_close_if_finished(run=run)
    return queued


def _queue_runnable(run: ChecklistRun, now: datetime.datetime) -> int:
    """Move the run's runnable automated tasks `pending → queued` and enqueue them after commit."""
    ids = list(
        runnable_tasks(run=run, now=now)
        .filter(assignee_type=Assignee.SYSTEM)
        .exclude(action="")
        .values_list("pk", flat=True)
    )
    queued = _mark_queued(ids, now)
    for task_id in queued:
        enqueue_on_commit(EXECUTE_TASK, task_id)
    return len(queued)


def _mark_queued(ids: list[int], now: datetime.datetime) -> list[int]:
    """Move the tasks `ids` that are still pending to queued; returns the ids this call moved.

    Each task moves once however many callers race (the update is conditional on `pending`).
    One `UPDATE ... RETURNING` per 500 tasks where the database has it (PostgreSQL, SQLite),
    else one conditional update per task.
    """
    if not ids:
        return []
    if connection.vendor not in ("postgresql", "sqlite") or not connection.features.can_return_columns_from_insert:
        return [
            task_id
            for task_id in ids
            if Task.objects.filter(pk=task_id, status=TaskStatus.PENDING).update(
                status=TaskStatus.QUEUED, queued_at=now
            )
        ]
    quote = connection.ops.quote_name
    field = Task._meta.get_field
    moved: list[int] = []
    ids = sorted(ids)
    table, status, queued_at, pk = (
        quote(name)
        for name in (Task._meta.db_table, field("status").column, field("queued_at").column, field("id").column)
    )
    with connection.cursor() as cursor:
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
            # Names come from the model, values are parameters; the ORM's update() cannot say which rows it moved.
            sql = (
                f"UPDATE {table} SET {status} = %s, {queued_at} = %s "  # noqa: S608
                f"WHERE {pk} IN ({', '.join(['%s'] * len(batch))}) AND {status} = %s RETURNING {pk}"
            )
            params = [
                TaskStatus.QUEUED,
                field("queued_at").get_db_prep_save(now, connection),
                *batch,
                TaskStatus.PENDING,
            ]
            cursor.execute(sql, params)
            moved.extend(row[0] for row in cursor.fetchall())
    return sorted(moved)


@transaction.atomic
def run_close_if_finished(*, run: ChecklistRun) -> bool:
    """Mark the open run done, with its figures, once every task is done or skipped.

    Runs once per run (the run row is locked and its status checked). A join run records its
    time to provision: from the moment it took effect (first day) to now, zero if it was
    ready before.
    """
    if Task.objects.filter(run=run).exclude(status__in=FINISHED_TASK_STATUSES).exists():
        return False
    locked = ChecklistRun.objects.select_for_update().filter(pk=run.pk, status=RunStatus.RUNNING).first()
    if locked is None:
        return False
    # Checked again under the lock: a flow that adds a task to an open run locks it first.
    if Task.objects.filter(run=run).exclude(status__in=FINISHED_TASK_STATUSES).exists():
        return False
    now = timezone.now()
    locked.status = RunStatus.DONE
    locked.completed_at = now
    fields = ["status", "completed_at"]
    if locked.kind == ChecklistKind.JOIN:
        locked.time_to_provision = max(now - locked.effective_at, datetime.timedelta(0))
        fields.append("time_to_provision")
    set_history_user(locked, None)
    locked.save(update_fields=fields)
    for name in fields:
        setattr(run, name, getattr(locked, name))
    return True


def run_record_revocation(*, run: ChecklistRun, at: datetime.datetime | None = None) -> None:
    """A revocation of the person's access was confirmed: keep the time to deprovision current.

    Actions call this when a revocation is confirmed (by a connector, or by IT completing a
    handed-off task). The figure only moves forward, so after the last revocation it is
    "event → last revocation confirmed"; never negative.
    """
    at = at or timezone.now()
    ChecklistRun.objects.filter(pk=run.pk).filter(
        Q(last_revocation_at__isnull=True) | Q(last_revocation_at__lt=at)
    ).update(last_revocation_at=at, time_to_deprovision=max(at - run.effective_at, datetime.timedelta(0)))


@transaction.atomic
def run_cancel(*, run: ChecklistRun, acting_user, reason: str) -> ChecklistRun:
    """Cancel an open run (e.g. a resignation withdrawn): its unfinished tasks are skipped.

    A task running right now finishes, but nothing else of the run is started. The reason is
    kept in history, on the tasks and in the audit log.
    """
    if not reason.strip():
        raise ValidationError("Give a reason for cancelling.")
    run = ChecklistRun.objects.select_for_update().select_related("employee").get(pk=run.pk)
    if run.status != RunStatus.RUNNING:
        raise ValidationError(f"{run} is {run.get_status_display().lower()}; only an open run can be cancelled.")
    now = timezone.now()
    skipped = Task.objects.filter(
        run=run, status__in=(TaskStatus.PENDING, TaskStatus.QUEUED, TaskStatus.FAILED)
    ).update(
        status=TaskStatus.SKIPPED,
        completed_at=now,
        completed_by=_user_or_none(acting_user),
        note=f"Run cancelled: {reason}",
    )
    run.status = RunStatus.CANCELLED
    run.completed_at = now
    set_history_user(run, acting_user)
    run.save(update_fields=["status", "completed_at"])
    audit_record(
        action=AuditEvent.Action.RUN_CANCELLED,
        target=run,
        acting_user=acting_user,
        detail={"kind": run.kind, "reason": reason, "tasks_skipped": skipped},
    )
    return run


# --- Executing --------------------------------------------------------------------------


def _backoff(attempts: int) -> datetime.timedelta:
    base = engine_setting("BACKOFF_BASE")
    return min(base * (2 ** max(attempts - 1, 0)), engine_setting("BACKOFF_MAX"))


def _claimable(now: datetime.datetime) -> Q:
    stale = now - engine_setting("RUNNING_DEADLINE")
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
    return Task.objects.select_related("run", "run__employee", "run__employee__manager").get(pk=task_id)


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

    action = _registry().get(task.action)
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
                assignee=_assignee_for(outcome.assignee_type, task.run.employee),
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


# --- People acting on tasks --------------------------------------------------------------


def _describe(task: Task) -> str:
    return f"“{task.title}” is {task.get_status_display().lower()}"


@transaction.atomic
def task_complete(*, task: Task, acting_user, note: str = "") -> Task:
    """A person marks a manual (or handed-off) task done. Idempotent for a task already done.

    Refused for an automated task, a task not pending, a task of a run that is not open, or
    one whose dependencies are not finished. Calls the action's `on_manual_complete` hook
    (e.g. confirming a revocation done by hand) in the same transaction.
    """
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
    action = _registry().get(task.action)
    if action is not None and action.on_manual_complete is not None:
        action.on_manual_complete(task, acting_user)
    task.status = TaskStatus.DONE
    task.completed_at = timezone.now()
    task.completed_by = _user_or_none(acting_user)
    task.note = note
    set_history_user(task, acting_user)
    task.save(update_fields=["status", "completed_at", "completed_by", "note"])
    run_advance(run=task.run)
    return task


@transaction.atomic
def task_retry(*, task: Task, acting_user, reason: str) -> Task:
    """IT sends a failed task back to the queue with a fresh set of attempts; the reason is kept in history."""
    if not reason.strip():
        raise ValidationError("Give a reason for the retry.")
    task = Task.objects.select_for_update().select_related("run").get(pk=task.pk)
    if task.status != TaskStatus.FAILED:
        raise ValidationError(f"{_describe(task)}, not failed; nothing to retry.")
    if task.run.status != RunStatus.RUNNING:
        raise ValidationError(f"“{task.title}” belongs to a run that is {task.run.get_status_display().lower()}.")
    task.status = TaskStatus.PENDING
    task.attempts = 0
    task.not_before = None
    task.note = reason
    set_history_user(task, acting_user)
    task.save(update_fields=["status", "attempts", "not_before", "note"])
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
    task = Task.objects.select_for_update().select_related("run").get(pk=task.pk)
    if task.status not in (TaskStatus.FAILED, TaskStatus.PENDING):
        raise ValidationError(f"{_describe(task)}; only a failed or pending task can be skipped.")
    task.status = TaskStatus.SKIPPED
    task.completed_at = timezone.now()
    task.completed_by = _user_or_none(acting_user)
    task.note = reason
    set_history_user(task, acting_user)
    task.save(update_fields=["status", "completed_at", "completed_by", "note"])
    audit_record(
        action=AuditEvent.Action.TASK_SKIPPED,
        target=task,
        acting_user=acting_user,
        detail={"run": task.run_id, "reason": reason},
    )
    run_advance(run=task.run)
    return task


# --- Sweeper ----------------------------------------------------------------------------


def sweep(*, now: datetime.datetime | None = None) -> dict[str, int]:
    """Recover and start work. Runs every minute from the queue's scheduler; safe to run concurrently.

    - `queued` past QUEUED_DEADLINE: enqueued again (the broker lost it); the claim dedups.
    - `running` past RUNNING_DEADLINE (its worker died or timed out): enqueued again, and the
      claim takes over; on its last attempt it is failed instead, with that as its error.
    - pending automated tasks whose time and dependencies have come: queued.
    - open runs with nothing left to do: closed.
    """
    now = now or timezone.now()
    counts = {"requeued_queued": 0, "requeued_running": 0, "failed_stalled": 0, "started": 0, "closed": 0}
    with transaction.atomic():
        lost = list(
            Task.objects.filter(status=TaskStatus.QUEUED, queued_at__lt=now - engine_setting("QUEUED_DEADLINE"))
            .order_by()
            .values_list("pk", flat=True)[:SWEEP_BATCH]
        )
        for task_id in lost:
            if Task.objects.filter(pk=task_id, status=TaskStatus.QUEUED).update(queued_at=now):
                enqueue_on_commit(EXECUTE_TASK, task_id)
                counts["requeued_queued"] += 1

        stalled = Task.objects.filter(
            status=TaskStatus.RUNNING, started_at__lt=now - engine_setting("RUNNING_DEADLINE")
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
        for task_id in stalled.filter(attempts__lt=F("max_attempts")).values_list("pk", flat=True)[:SWEEP_BATCH]:
            # Left `running`: task_claim takes over a stale running task, so a late original
            # delivery and this one cannot both record an outcome.
            enqueue_on_commit(EXECUTE_TASK, task_id)
            counts["requeued_running"] += 1

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


# --- Reminders --------------------------------------------------------------------------


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
    base = settings.PORTAL_BASE_URL.rstrip("/")
    path = reverse("admin:offboarding_task_change", args=[task.pk]) if for_it else reverse("home")
    return f"{base}{path}"


def tasks_remind_overdue(*, now: datetime.datetime | None = None) -> dict[str, int]:
    """Email each person (or the IT team) the overdue tasks they must do; returns counts.

    A task is reminded at most once every `REMINDER_INTERVAL_DAYS`, however often or
    concurrently this runs: each reminder is claimed first with a conditional update of
    `last_reminded_at`. One email per recipient lists all their overdue tasks. If sending fails,
    the claims are released so the next run tries again.
    """
    now = now or timezone.now()
    interval = datetime.timedelta(days=engine_setting("REMINDER_INTERVAL_DAYS"))
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
        subject = f"Overdue: {len(tasks)} task{'s' if len(tasks) != 1 else ''} waiting for you in Portal"
        try:
            send_mail(
                subject=subject,
                message=render_to_string("emails/task_overdue.txt", context),
                html_message=render_to_string("emails/task_overdue.html", context),
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=[address],
            )
        except Exception:  # noqa: BLE001 - one bad address or a mail outage must not stop the others
            logger.exception("Could not send the overdue reminder to %s", address)
            for task in tasks:
                Task.objects.filter(pk=task.pk, last_reminded_at=now).update(last_reminded_at=task.last_reminded_at)
            counts["errors"] += 1
            continue
        counts["emails"] += 1
        counts["tasks"] += len(tasks)
    return counts
