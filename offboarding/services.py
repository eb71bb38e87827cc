"""The lifecycle engine: start a run, materialise its tasks, run them, recover from crashes.

Guarantees:
- Tasks are materialised once: `(run, key)` is unique, so starting or fanning out again
  creates nothing twice.
- Only ids travel to the queue, after commit (`portal.queue.enqueue_on_commit`).
- A task is claimed with a conditional update (`queued → running`, or a `running` task whose
  worker has been silent past the deadline); a second delivery finds nothing to claim.
- A failing action is retried with exponential backoff up to `max_attempts`, then `failed`
  with its error, for IT to retry or skip with a reason.
- The sweeper re-enqueues tasks stuck in `queued` or `running` (a Redis broker loses a task
  when a worker dies) and starts tasks whose due time or backoff has come.
"""

import datetime
import logging
import traceback

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from accounts.models import Employee
from offboarding.actions import Handoff, registry
from offboarding.models import (
    FINISHED_TASK_STATUSES,
    Assignee,
    ChecklistKind,
    ChecklistRun,
    ChecklistTemplate,
    RunStatus,
    Task,
    TaskStatus,
)
from portal.audit import audit_record
from portal.history import set_history_user
from portal.models import AuditEvent
from portal.queue import enqueue_on_commit

logger = logging.getLogger(__name__)

EXECUTE_TASK = "offboarding.tasks.task_execute"


def engine_setting(name: str):
    defaults = {
        # A claimed task whose worker is silent this long is presumed dead (must exceed Q timeout).
        "RUNNING_DEADLINE": datetime.timedelta(seconds=settings.Q_CLUSTER["timeout"] + 30),
        # A queued task not picked up this long is presumed lost by the broker.
        "QUEUED_DEADLINE": datetime.timedelta(seconds=settings.Q_CLUSTER.get("retry", 90) + 30),
        "BACKOFF_BASE": datetime.timedelta(seconds=30),
        "BACKOFF_MAX": datetime.timedelta(hours=1),
    }
    return getattr(settings, "LIFECYCLE", {}).get(name, defaults[name])


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


def template_dependency_cycle(template: ChecklistTemplate) -> list[str] | None:
    """The keys of a dependency cycle among the template's tasks, or None."""
    edges: dict[int, list[int]] = {}
    names = {}
    for task in template.task_templates.prefetch_related("depends_on"):
        names[task.pk] = task.key
        edges[task.pk] = [dep.pk for dep in task.depends_on.all()]
    state: dict[int, int] = {}
    stack: list[int] = []

    def visit(node: int) -> list[int] | None:
        state[node] = 1
        stack.append(node)
        for nxt in edges.get(node, []):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in edges:
        if node not in state:
            found = visit(node)
            if found:
                return [names.get(n, str(n)) for n in found]
    return None


def template_validate(*, template: ChecklistTemplate) -> None:
    """Raise ValidationError naming the problem if the template's tasks cannot run."""
    cycle = template_dependency_cycle(template)
    if cycle:
        raise ValidationError(f"The tasks depend on each other in a cycle: {' → '.join(cycle)}.")
    for task in template.task_templates.prefetch_related("depends_on"):
        foreign = [d.key for d in task.depends_on.all() if d.checklist_id != template.pk]
        if foreign:
            raise ValidationError(f"Task {task.key!r} depends on tasks of another checklist: {', '.join(foreign)}.")
        task.full_clean()


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

    Idempotent under concurrency: the unique open-run constraint makes a second, concurrent
    start return the first run instead of creating another.
    """
    if kind not in ChecklistKind.values:
        raise ValidationError(f"Unknown checklist kind {kind!r}.")
    employee = Employee.objects.select_for_update().get(pk=employee.pk)
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
        started_by=acting_user if getattr(acting_user, "pk", None) else None,
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
        action=AuditEvent.Action.OTHER,
        target=run,
        acting_user=acting_user,
        detail={"event": f"{kind}_started", "employee": employee.pk, "event_date": str(event_date)},
    )
    run_advance(run=run)
    return run


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
) -> Task:
    """Add one task to a run (e.g. a fan-out child). Idempotent on `(run, key)`."""
    task, created = Task.objects.get_or_create(
        run=run,
        key=key,
        defaults={
            "title": title[:200],
            "action": action,
            "params": params or {},
            "assignee_type": assignee_type,
            "assignee": assignee,
            "due_at": due_at or timezone.now(),
            "parent": parent,
            "instructions": instructions,
            "knowledge_url": knowledge_url,
        },
    )
    if created and depends_on:
        task.depends_on.add(*depends_on)
    return task


# --- Advancing --------------------------------------------------------------------------


def runnable_tasks(*, run: ChecklistRun | None = None, now: datetime.datetime | None = None):
    """Pending tasks whose dependencies are all finished and whose time has come."""
    now = now or timezone.now()
    qs = Task.objects.filter(status=TaskStatus.PENDING, due_at__lte=now).filter(
        Q(not_before__isnull=True) | Q(not_before__lte=now)
    )
    if run is not None:
        qs = qs.filter(run=run)
    return qs.annotate(open_deps=Count("depends_on", filter=~Q(depends_on__status__in=FINISHED_TASK_STATUSES))).filter(
        open_deps=0
    )


def run_advance(*, run: ChecklistRun, now: datetime.datetime | None = None) -> int:
    """Queue the run's runnable automated tasks (after commit) and close the run when all is finished.

    Returns how many tasks were queued. Safe to call any number of times, from anywhere.
    """
    now = now or timezone.now()
    queued = 0
    ids = list(
        runnable_tasks(run=run, now=now)
        .filter(assignee_type=Assignee.SYSTEM)
        .exclude(action="")
        .values_list("pk", flat=True)
    )
    for task_id in ids:
        if Task.objects.filter(pk=task_id, status=TaskStatus.PENDING).update(status=TaskStatus.QUEUED, queued_at=now):
            enqueue_on_commit(EXECUTE_TASK, task_id)
            queued += 1
    run_close_if_finished(run=run)
    return queued


def run_close_if_finished(*, run: ChecklistRun) -> bool:
    """Mark the run done, with its figures, once every task is done or skipped."""
    if run.status != RunStatus.RUNNING:
        return False
    if Task.objects.filter(run=run).exclude(status__in=FINISHED_TASK_STATUSES).exists():
        return False
    now = timezone.now()
    updated = ChecklistRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
        status=RunStatus.DONE, completed_at=now
    )
    if not updated:
        return False
    run.refresh_from_db()
    if run.kind == ChecklistKind.JOIN:
        run.time_to_provision = max(now - run.effective_at, datetime.timedelta(0))
        run.save(update_fields=["time_to_provision"])
    return True


def run_record_revocation(*, run: ChecklistRun, at: datetime.datetime | None = None) -> None:
    """A revocation of the leaver's access was confirmed: keep the time to deprovision current."""
    at = at or timezone.now()
    ChecklistRun.objects.filter(pk=run.pk).filter(
        Q(last_revocation_at__isnull=True) | Q(last_revocation_at__lt=at)
    ).update(last_revocation_at=at, time_to_deprovision=at - F("effective_at"))


# --- Executing --------------------------------------------------------------------------


def _backoff(attempts: int) -> datetime.timedelta:
    base = engine_setting("BACKOFF_BASE")
    return min(base * (2 ** max(attempts - 1, 0)), engine_setting("BACKOFF_MAX"))


def task_claim(*, task_id: int, now: datetime.datetime | None = None) -> Task | None:
    """Claim a task for execution, or None if another delivery has it or it is finished.

    Claims a `queued` task, or a `running` one whose worker has been silent past the deadline
    (it died); the claim is one conditional UPDATE, so two deliveries cannot both win.
    """
    now = now or timezone.now()
    stale = now - engine_setting("RUNNING_DEADLINE")
    claimed = (
        Task.objects.filter(pk=task_id)
        .filter(Q(status=TaskStatus.QUEUED) | Q(status=TaskStatus.RUNNING, started_at__lt=stale))
        .update(status=TaskStatus.RUNNING, started_at=now, attempts=F("attempts") + 1)
    )
    if not claimed:
        return None
    return Task.objects.select_related("run", "run__employee").get(pk=task_id)


def task_execute(*, task_id: int) -> str:
    """Run one automated task: claim, act, record the outcome, advance the run. Returns the outcome."""
    task = task_claim(task_id=task_id)
    if task is None:
        return "not-claimed"
    action = registry.get(task.action)
    try:
        if action is None:
            raise ValidationError(f"Unknown action {task.action!r}.")
        outcome = action.func(task)
    except Exception as exc:  # noqa: BLE001 - any failure of an action is recorded on the task
        return _task_failed(task, exc)
    with transaction.atomic():
        if isinstance(outcome, Handoff):
            updated = Task.objects.filter(pk=task.pk, status=TaskStatus.RUNNING, started_at=task.started_at).update(
                status=TaskStatus.PENDING,
                assignee_type=outcome.assignee_type,
                instructions=f"{task.instructions}\n\n{outcome.instructions}".strip(),
                result=outcome.result,
                last_error="",
            )
            result = "handed-off"
        else:
            updated = Task.objects.filter(pk=task.pk, status=TaskStatus.RUNNING, started_at=task.started_at).update(
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
    if task.attempts >= task.max_attempts:
        fields = {"status": TaskStatus.FAILED, "last_error": detail[:4000]}
        outcome = "failed"
    else:
        fields = {
            "status": TaskStatus.PENDING,
            "last_error": detail[:4000],
            "not_before": timezone.now() + _backoff(task.attempts),
        }
        outcome = "retry"
    Task.objects.filter(pk=task.pk, status=TaskStatus.RUNNING, started_at=task.started_at).update(**fields)
    return outcome


# --- People acting on tasks --------------------------------------------------------------


@transaction.atomic
def task_complete(*, task: Task, acting_user, note: str = "") -> Task:
    """A person marks a manual (or handed-off) task done. Idempotent for a task already done."""
    task = Task.objects.select_for_update().select_related("run").get(pk=task.pk)
    if task.status == TaskStatus.DONE:
        return task
    if task.status != TaskStatus.PENDING or task.assignee_type == Assignee.SYSTEM:
        raise ValidationError(f"“{task.title}” is {task.get_status_display().lower()}; it cannot be completed by hand.")
    open_deps = task.depends_on.exclude(status__in=FINISHED_TASK_STATUSES)
    if open_deps.exists():
        raise ValidationError(f"“{task.title}” waits for: {', '.join(t.title for t in open_deps)}. Finish those first.")
    action = registry.get(task.action)
    if action is not None and action.on_manual_complete is not None:
        action.on_manual_complete(task, acting_user)
    task.status = TaskStatus.DONE
    task.completed_at = timezone.now()
    task.completed_by = acting_user if getattr(acting_user, "pk", None) else None
    task.note = note
    set_history_user(task, acting_user)
    task.save(update_fields=["status", "completed_at", "completed_by", "note"])
    run_advance(run=task.run)
    return task


@transaction.atomic
def task_retry(*, task: Task, acting_user, reason: str) -> Task:
    """IT sends a failed task back to the queue, with a reason kept in history."""
    if not reason.strip():
        raise ValidationError("Give a reason for the retry.")
    task = Task.objects.select_for_update().select_related("run").get(pk=task.pk)
    if task.status != TaskStatus.FAILED:
        raise ValidationError(f"“{task.title}” is {task.get_status_display().lower()}, not failed; nothing to retry.")
    task.status = TaskStatus.PENDING
    task.attempts = 0
    task.not_before = None
    task.note = reason
    set_history_user(task, acting_user)
    task.save(update_fields=["status", "attempts", "not_before", "note"])
    run_advance(run=task.run)
    return task


@transaction.atomic
def task_skip(*, task: Task, acting_user, reason: str) -> Task:
    """IT skips a task that will not be done (failed or pending), with a reason kept in history."""
    if not reason.strip():
        raise ValidationError("Give a reason for skipping.")
    task = Task.objects.select_for_update().select_related("run").get(pk=task.pk)
    if task.status not in (TaskStatus.FAILED, TaskStatus.PENDING):
        raise ValidationError(
            f"“{task.title}” is {task.get_status_display().lower()}; only a failed or pending task can be skipped."
        )
    task.status = TaskStatus.SKIPPED
    task.completed_at = timezone.now()
    task.completed_by = acting_user if getattr(acting_user, "pk", None) else None
    task.note = reason
    set_history_user(task, acting_user)
    task.save(update_fields=["status", "completed_at", "completed_by", "note"])
    audit_record(
        action=AuditEvent.Action.OTHER,
        target=task,
        acting_user=acting_user,
        detail={"event": "task_skipped", "run": task.run_id, "reason": reason},
    )
    run_advance(run=task.run)
    return task


# --- Sweeper ----------------------------------------------------------------------------


def sweep(*, now: datetime.datetime | None = None) -> dict[str, int]:
    """Recover and start work: re-enqueue lost or stalled tasks, queue tasks whose time has come.

    Runs every minute from the queue's scheduler; safe to run concurrently with itself.
    """
    now = now or timezone.now()
    counts = {"requeued_queued": 0, "requeued_running": 0, "started": 0}
    with transaction.atomic():
        lost = list(
            Task.objects.filter(
                status=TaskStatus.QUEUED, queued_at__lt=now - engine_setting("QUEUED_DEADLINE")
            ).values_list("pk", flat=True)[:1000]
        )
        for task_id in lost:
            if Task.objects.filter(pk=task_id, status=TaskStatus.QUEUED).update(queued_at=now):
                enqueue_on_commit(EXECUTE_TASK, task_id)
                counts["requeued_queued"] += 1
        stalled = list(
            Task.objects.filter(
                status=TaskStatus.RUNNING, started_at__lt=now - engine_setting("RUNNING_DEADLINE")
            ).values_list("pk", flat=True)[:1000]
        )
        for task_id in stalled:
            # Leave it `running`: task_claim takes over a stale running task, so a late original
            # delivery and this one cannot both act.
            enqueue_on_commit(EXECUTE_TASK, task_id)
            counts["requeued_running"] += 1
        run_ids = set(
            runnable_tasks(now=now)
            .filter(assignee_type=Assignee.SYSTEM, run__status=RunStatus.RUNNING)
            .values_list("run_id", flat=True)[:1000]
        )
        for run in ChecklistRun.objects.filter(pk__in=run_ids):
            counts["started"] += run_advance(run=run, now=now)
    return counts
