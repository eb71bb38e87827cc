"""Runs and their tasks: start a run, materialise its templates, add tasks, advance, close, cancel.

Tasks are materialised once: `(run, key)` is unique, so starting or fanning out again creates
nothing twice, and there is at most one open run of each kind per employee, under concurrency
too. Runnable automated tasks move `pending → queued` once however many callers race, and only
their ids travel to the queue, after commit (`portal.queue.enqueue_each_on_commit`). A task waits for
every task it depends on to be done or skipped, and for its due time. No task is created
overdue (`due_at_from_now`). The time to deprovision of a leave run is kept current through
`run_record_revocation`.
"""

import contextlib
import datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import (
    BooleanField,
    Case,
    DateTimeField,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    Prefetch,
    Q,
    Value,
    When,
    prefetch_related_objects,
)
from django.utils import timezone
from simple_history.models import HistoricalRecords
from simple_history.utils import bulk_create_with_history

from accounts.models import Employee
from offboarding import selectors
from offboarding.conf import lifecycle_setting
from offboarding.engine.templates import templates_for
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
from portal.queue import enqueue_each_on_commit

EXECUTE_TASK = "offboarding.tasks.task_execute"

# The audit action recorded when a run of each checklist kind starts (one typed action per kind).
RUN_STARTED_ACTIONS = {
    ChecklistKind.JOIN: AuditEvent.Action.JOIN_STARTED,
    ChecklistKind.MOVE: AuditEvent.Action.MOVE_STARTED,
    ChecklistKind.LEAVE: AuditEvent.Action.LEAVE_STARTED,
    ChecklistKind.ACCESS: AuditEvent.Action.ACCESS_STARTED,
}


def user_or_none(acting_user):
    """The acting user to store on a row: None for the system (no user, or an unsaved one)."""
    return acting_user if getattr(acting_user, "pk", None) else None


def assignee_for(assignee_type: str, employee: Employee) -> Employee | None:
    """The person a task of `assignee_type` goes to for `employee`'s run (None: IT or the system)."""
    if assignee_type == Assignee.EMPLOYEE:
        return employee
    if assignee_type == Assignee.MANAGER:
        return employee.manager
    return None


# A person given a task whose due time has already passed when it is created (an immediate
# leaver's "3 days before the cut-off", a joiner added late) gets this long for it, not a task
# that is overdue, and reminded about, from the moment it exists.
LATE_TASK_GRACE = datetime.timedelta(days=1)


def due_at_from_now(
    due_at: datetime.datetime | None, *, assignee_type: str, now: datetime.datetime | None = None
) -> datetime.datetime:
    """The due time a new task gets: `due_at`, but never before `now` (the moment it is created).

    A due time already past becomes now for an automated task (it starts at once) and now +
    `LATE_TASK_GRACE` for a person's task. No due time: now.
    """
    now = now or timezone.now()
    if due_at is not None and due_at >= now:
        return due_at
    return now if assignee_type == Assignee.SYSTEM or due_at is None else now + LATE_TASK_GRACE


@transaction.atomic
def run_start(
    *,
    employee: Employee,
    kind: str,
    event_date: datetime.date,
    acting_user,
    effective_at: datetime.datetime | None = None,
    details: dict | None = None,
    queue: bool = True,
) -> ChecklistRun:
    """Start (or return the already open) run of `kind` for `employee` and materialise its tasks.

    `effective_at` defaults to 09:00 local time on `event_date`. Idempotent under concurrency:
    the employee row lock (PostgreSQL) and the unique open-run constraint make a second,
    concurrent start return the first run instead of creating another. The runnable automated
    tasks are queued after commit (`queue=False`: not here, for a flow that adds its own tasks and
    then calls `run_advance`, which queues them). The run is not closed here, even with no task: a
    flow may add its own tasks (`task_add`) right after, then call `run_advance`, which closes a run
    with nothing left to do (as the sweeper does for one nobody advances).
    """
    if kind not in ChecklistKind.values:
        raise ValidationError(f"Unknown checklist kind {kind!r}.")
    employee = Employee.objects.select_for_update(of=("self",)).select_related("manager").get(pk=employee.pk)
    existing = ChecklistRun.objects.filter(employee=employee, kind=kind, status=RunStatus.RUNNING).first()
    if existing is not None:
        return existing
    return run_create(
        employee=employee,
        kind=kind,
        event_date=event_date,
        acting_user=acting_user,
        effective_at=effective_at,
        details=details,
        queue=queue,
    )


def run_create(
    *,
    employee: Employee,
    kind: str,
    event_date: datetime.date,
    acting_user,
    effective_at: datetime.datetime | None = None,
    details: dict | None = None,
    queue: bool = True,
) -> ChecklistRun:
    """`run_start` for a flow that already holds the employee's row lock (`select_for_update`, with
    `manager` selected) and found no open run of `kind`: the same run, without reading them again.

    Call it inside the transaction that took the lock. The new run's materialised tasks are on
    `run.started_tasks` (a list, in creation order), so the flow can add its core steps without
    reading them back (`flows.common.ensure_steps`); a run returned by a lost race has none.
    """
    if kind not in ChecklistKind.values:
        raise ValidationError(f"Unknown checklist kind {kind!r}.")
    if effective_at is None:
        effective_at = timezone.make_aware(datetime.datetime.combine(event_date, datetime.time(9, 0)))
    run = ChecklistRun(
        employee=employee,
        kind=kind,
        event_date=event_date,
        effective_at=effective_at,
        started_by=user_or_none(acting_user),
        details=details or {},
    )
    set_history_user(run, acting_user)
    try:
        with transaction.atomic():
            run.save()
    except IntegrityError:
        # Lost a race with a concurrent start (possible where the row lock above is a no-op).
        return ChecklistRun.objects.get(employee=employee, kind=kind, status=RunStatus.RUNNING)
    run.started_tasks = _materialise(run, templates_for(employee=employee, kind=kind))
    audit_record(
        action=RUN_STARTED_ACTIONS[kind],
        target=run,
        acting_user=acting_user,
        detail={"employee": employee.pk, "event_date": str(event_date)},
    )
    if queue:
        queued = set(_queue_runnable(run, timezone.now()))
        for task in run.started_tasks:
            if task.pk in queued:
                task.status = TaskStatus.QUEUED
    return run


def _max_attempts(template: TaskTemplate | None = None) -> int:
    if template is not None and template.max_attempts:
        return template.max_attempts
    return int(lifecycle_setting("MAX_ATTEMPTS"))


def _materialise(run: ChecklistRun, templates: list[ChecklistTemplate]) -> list[Task]:
    """Create the tasks of `templates` (keys `<template>:<task key>`) and their dependencies in a run just
    saved in this transaction, so none of them exists yet: one insert of the tasks, one of their history
    rows and one of their dependencies, however many templates and tasks. Returns the tasks."""
    if not templates:
        return []
    prefetch_related_objects(templates, Prefetch("task_templates", to_attr="engine_task_templates"))
    task_templates = [tt for template in templates for tt in template.engine_task_templates]
    prefetch_related_objects(task_templates, "depends_on")
    now = timezone.now()
    tasks: list[Task] = []
    edges: list[tuple[Task, int]] = []
    for template in templates:
        by_template: dict[int, Task] = {}
        for tt in template.engine_task_templates:
            task = Task(
                run=run,
                key=f"{template.pk}:{tt.key}",
                template=tt,
                title=tt.title,
                instructions=tt.instructions,
                knowledge_url=tt.knowledge_url,
                assignee_type=tt.assignee,
                assignee=assignee_for(tt.assignee, run.employee),
                action=tt.action,
                params=tt.params,
                due_at=due_at_from_now(
                    run.effective_at + datetime.timedelta(days=tt.due_offset_days), assignee_type=tt.assignee, now=now
                ),
                max_attempts=_max_attempts(tt),
            )
            by_template[tt.pk] = task
            tasks.append(task)
        for tt in template.engine_task_templates:
            edges.extend((by_template[tt.pk], by_template[d.pk]) for d in tt.depends_on.all() if d.pk in by_template)
    if not tasks:
        return []
    # The history rows name whom a save of each task would name: the signed-in user of the request, if any.
    created = bulk_create_with_history(tasks, Task, default_user=_request_user())
    if any(task.pk is None for task in created):  # a database that returns no ids from a bulk insert
        by_key = dict(Task.objects.filter(run=run).values_list("key", "pk"))
        for task in created:
            task.pk = task.id = by_key[task.key]
    Through = Task.depends_on.through
    pairs = sorted({(a.pk, b.pk) for a, b in edges})
    if pairs:
        Through.objects.bulk_create([Through(from_task_id=a, to_task_id=b) for a, b in pairs])
    return created


def _request_user():
    """The signed-in user of the current request as simple-history's middleware saw it (None outside one)."""
    user = getattr(getattr(HistoricalRecords.context, "request", None), "user", None)
    return user if getattr(user, "is_authenticated", False) else None


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

    Its due time is `due_at` (default now), never before now (`due_at_from_now`).

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
    from offboarding.engine.execution import action_registry  # execution builds on this module

    if action and action not in action_registry():
        raise ValidationError(f"Unknown action {action!r}; choose one of {', '.join(sorted(action_registry()))}.")
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
        "assignee": assignee if assignee is not None else assignee_for(assignee_type, run.employee),
        "due_at": due_at_from_now(due_at, assignee_type=assignee_type),
        "parent": parent,
        "instructions": instructions,
        "knowledge_url": knowledge_url,
        "max_attempts": max_attempts or _max_attempts(),
    }


def task_add_many(*, run: ChecklistRun, tasks: list[dict], known: dict[str, Task] | None = None) -> list[Task]:
    """Add several tasks to an open run at once (a fan-out); each item holds `task_add`'s arguments.

    Same rules and guarantees as calling `task_add` for each item, in order (idempotent on
    `(run, key)`; the first of two items with one key wins; history rows written; refused as
    `task_add` refuses), but in a constant number of queries however many tasks: one read of
    the keys already there, one check that the run is open, one insert of the tasks, one of
    their history rows and one of their dependencies. Returns the tasks in the order given.
    An item's `depends_on` may name, besides tasks, the key (a string) of an earlier item of the
    same call: the dependency is written once both exist.
    `known`: for a run started in the caller's transaction (`run_create`), every task it has, by key:
    nobody else can have added one or closed the run, so the read of the keys and the open check
    are left out. If a concurrent caller adds one of the keys meanwhile, falls back to `task_add` per item.
    """
    for item in tasks:
        _task_add_check(
            run=run,
            action=item.get("action", ""),
            assignee_type=item.get("assignee_type", Assignee.SYSTEM),
            parent=item.get("parent"),
            depends_on=[d for d in item.get("depends_on") or [] if not isinstance(d, str)],
        )
    if not tasks:
        return []
    keys = {item["key"] for item in tasks}
    if known is not None:
        by_key = {key: task for key, task in known.items() if key in keys}
    else:
        by_key = {task.key: task for task in Task.objects.filter(run=run, key__in=keys)}
    new_items: dict[str, dict] = {}
    for item in tasks:
        if item["key"] not in by_key:
            new_items.setdefault(item["key"], item)
    if new_items:
        if known is None and not ChecklistRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).exists():
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
            # A run started in this transaction cannot meet a concurrent insert: no savepoint for one.
            with transaction.atomic() if known is None else contextlib.nullcontext():
                created = bulk_create_with_history(fresh, Task)
                if any(task.pk is None for task in created):  # a database that returns no ids from a bulk insert
                    ids = dict(Task.objects.filter(run=run, key__in=new_items).values_list("key", "pk"))
                    for task in created:
                        task.pk = task.id = ids[task.key]
                by_key.update((task.key, task) for task in created)
                Through = Task.depends_on.through
                pairs = {
                    (task.pk, (by_key[dep] if isinstance(dep, str) else dep).pk)
                    for task in created
                    for dep in new_items[task.key].get("depends_on") or []
                }
                if pairs:
                    Through.objects.bulk_create([Through(from_task_id=a, to_task_id=b) for a, b in sorted(pairs)])
        except IntegrityError:
            # A concurrent caller added one of these keys: one by one, each returns what is there.
            added: dict[str, Task] = {}
            for item in tasks:
                deps = [added[d] if isinstance(d, str) else d for d in item.get("depends_on") or []]
                added.setdefault(item["key"], task_add(run=run, **{**item, "depends_on": deps or None}))
            return [added[item["key"]] for item in tasks]
    return [by_key[item["key"]] for item in tasks]


def _runnable(now: datetime.datetime) -> Q:
    """A pending task whose dependencies are all finished and whose time (due, backoff) has come."""
    return (
        Q(status=TaskStatus.PENDING, due_at__lte=now)
        & (Q(not_before__isnull=True) | Q(not_before__lte=now))
        & ~Q(Exists(selectors.task_open_dependencies()))
    )


def runnable_tasks(*, run: ChecklistRun | None = None, now: datetime.datetime | None = None):
    """Pending tasks whose dependencies are all finished and whose time (due, backoff) has come."""
    qs = Task.objects.filter(_runnable(now or timezone.now()))
    if run is not None:
        qs = qs.filter(run=run)
    return qs.order_by()


def run_advance(*, run: ChecklistRun, now: datetime.datetime | None = None) -> int:
    """Queue the run's runnable automated tasks (after commit) and close the run when all is finished.

    Returns how many tasks were queued. Safe to call any number of times, from anywhere; does
    nothing for a run that is no longer open (done or cancelled). `run` needs only its pk (a
    task's outcome passes `ChecklistRun(pk=task.run_id)`): the row is read only to close it.
    """
    now = now or timezone.now()
    # One query while the run has work left (after each task's outcome): its unfinished tasks, each
    # marked runnable or not. No separate look at the run's status: only tasks of an open run are
    # read, and closing checks the status under the run's lock.
    rows = _unfinished_tasks(run.pk, now)
    if not rows:
        run_close_if_finished(run=run)
        return 0
    queued = _mark_queued([pk for pk, runnable in rows if runnable], now)
    enqueue_each_on_commit(EXECUTE_TASK, queued)
    return len(queued)


def _unfinished_queryset(run_id: int, now: datetime.datetime):
    """The open run's unfinished tasks as (pk, runnable by the system now) pairs."""
    runnable = _runnable(now) & Q(assignee_type=Assignee.SYSTEM) & ~Q(action="")
    return (
        Task.objects.filter(run_id=run_id, run__status=RunStatus.RUNNING)
        .exclude(status__in=FINISHED_TASK_STATUSES)
        .annotate(runnable=ExpressionWrapper(runnable, output_field=BooleanField()))
        .values_list("pk", "runnable")
        .order_by()
    )


# `_unfinished_queryset` compiled once per process and database: building it (an Exists subquery,
# cloned at every step) cost more CPU than running it, after every task. Compiled with stand-in
# values that are then found among the parameters; if they cannot all be found, the ORM is used.
_RUN_STAND_IN = -987_654_321
_NOW_STAND_IN = datetime.datetime(2001, 2, 3, 4, 5, 6, 789012, tzinfo=datetime.UTC)
_compiled_unfinished: dict[str, tuple[str, list] | None] = {}


def _unfinished_tasks(run_id: int, now: datetime.datetime) -> list[tuple[int, bool]]:
    """`_unfinished_queryset(run_id, now)` evaluated, through its SQL compiled once."""
    vendor = connection.vendor
    if vendor not in _compiled_unfinished:
        sql, params = _unfinished_queryset(_RUN_STAND_IN, _NOW_STAND_IN).query.sql_with_params()
        now_param = Task._meta.get_field("due_at").get_db_prep_value(_NOW_STAND_IN, connection)
        slots = ["run" if p == _RUN_STAND_IN else "now" if p == now_param else ("value", p) for p in params]
        usable = slots.count("run") == 1 and "now" in slots and _NOW_STAND_IN.isoformat()[:10] not in sql
        _compiled_unfinished[vendor] = (sql, slots) if usable else None
    compiled = _compiled_unfinished[vendor]
    if compiled is None:
        return list(_unfinished_queryset(run_id, now))
    sql, slots = compiled
    now_param = Task._meta.get_field("due_at").get_db_prep_value(now, connection)
    params = [run_id if slot == "run" else now_param if slot == "now" else slot[1] for slot in slots]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [(pk, bool(runnable)) for pk, runnable in cursor.fetchall()]


def tasks_start_now(*, run: ChecklistRun, action: str) -> int:
    """Bring the run's pending automated tasks of `action` due later forward to now and queue
    what can run (after commit), e.g. a repeating reminder once nothing is left to remind of.

    Returns how many tasks were queued; dependencies still hold (a task waiting for another
    stays pending). Nothing for a run that is not open.
    """
    now = timezone.now()
    Task.objects.filter(
        run=run, action=action, status=TaskStatus.PENDING, assignee_type=Assignee.SYSTEM, due_at__gt=now
    ).update(due_at=now, not_before=None)
    return run_advance(run=run, now=now)


def _queue_runnable(run: ChecklistRun, now: datetime.datetime) -> list[int]:
    """Move the run's runnable automated tasks `pending → queued` and enqueue them after commit; their ids."""
    ids = list(
        runnable_tasks(run=run, now=now)
        .filter(assignee_type=Assignee.SYSTEM, run__status=RunStatus.RUNNING)
        .exclude(action="")
        .values_list("pk", flat=True)
    )
    queued = _mark_queued(ids, now)
    enqueue_each_on_commit(EXECUTE_TASK, queued)  # one broker write for them all
    return queued


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


# No savepoint when called inside a transaction (a task's outcome): nothing here is caught and
# carried on from, so the caller's transaction is the unit; two queries fewer per task.
@transaction.atomic(savepoint=False)
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
    "event → last revocation confirmed"; never negative. Only a leave run keeps it: for any
    other run (a mover's revocation) this does nothing.
    """
    at = at or timezone.now()
    # One UPDATE, computed from the row (`run` needs only its pk): a leaver's revocations each call this.
    since_cut_off = Value(at, output_field=DateTimeField()) - F("effective_at")
    elapsed = ExpressionWrapper(since_cut_off, output_field=DurationField())
    ChecklistRun.objects.filter(pk=run.pk, kind=ChecklistKind.LEAVE).filter(
        Q(last_revocation_at__isnull=True) | Q(last_revocation_at__lt=at)
    ).update(
        last_revocation_at=at,
        time_to_deprovision=Case(When(effective_at__lt=at, then=elapsed), default=Value(datetime.timedelta(0))),
    )


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
        completed_by=user_or_none(acting_user),
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
