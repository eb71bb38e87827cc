"""Runs (offboarding.engine.runs): materialising templates, adding tasks, cancelling, figures, concurrent starts.

The queue runs in sync mode (config.test_settings); `django_capture_on_commit_callbacks(execute=True)`
runs what was enqueued after commit, as a worker would. The test actions are in `offboarding.tests.actions`.
"""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import EmploymentType
from accounts.tests.factories import (
    DepartmentFactory,
    EmployeeFactory,
    EntitlementFactory,
    LocationFactory,
    RoleFactory,
    UserFactory,
)
from offboarding import engine, selectors
from offboarding.models import (
    Assignee,
    ChecklistKind,
    ChecklistRun,
    ChecklistTemplate,
    RunStatus,
    Task,
    TaskStatus,
    TaskTemplate,
)
from offboarding.tests.actions import calls
from offboarding.tests.factories import make_template, one_task_template, start
from portal.models import AuditEvent
from portal.testing.concurrency import kinds, run_at_once

pytestmark = pytest.mark.django_db


# --- Materialising -------------------------------------------------------------------------------


def test_run_executes_automated_tasks_in_dependency_order_and_closes(django_capture_on_commit_callbacks):
    make_template()
    employee = EmployeeFactory()
    with django_capture_on_commit_callbacks(execute=True):
        run = start(employee)
    run.refresh_from_db()
    first, second = Task.objects.filter(run=run).order_by("id")
    assert calls == [first.pk, second.pk]
    assert {t.status for t in run.tasks.all()} == {TaskStatus.DONE}
    assert run.status == RunStatus.DONE
    assert run.completed_at is not None


def test_templates_apply_by_role_department_location_and_employment_type():
    role, other_role = RoleFactory(), RoleFactory()
    department, location = DepartmentFactory(), LocationFactory()
    employee = EmployeeFactory(
        role=role, department=department, location=location, employment_type=EmploymentType.CONTRACTOR
    )
    everyone = make_template(name="everyone")
    matching = make_template(
        name="matching",
        roles=[role, other_role],
        departments=[department],
        locations=[location],
        employment_types=[EmploymentType.CONTRACTOR, EmploymentType.INTERN],
    )
    make_template(name="other role", roles=[other_role])
    make_template(name="other department", departments=[DepartmentFactory()])
    make_template(name="other location", locations=[LocationFactory()])
    make_template(name="full-timers", employment_types=[EmploymentType.FULL_TIME])
    make_template(name="join only", kind=ChecklistKind.JOIN)
    inactive = make_template(name="inactive")
    inactive.is_active = False
    inactive.save()

    chosen = engine.templates_for(employee=employee, kind=ChecklistKind.LEAVE)
    assert {t.name for t in chosen} == {"everyone", "matching"}

    run = start(employee, effective_at=timezone.now() + datetime.timedelta(days=5))
    assert set(run.tasks.values_list("template__checklist__name", flat=True)) == {everyone.name, matching.name}
    assert run.tasks.count() == 4


def test_due_dates_assignees_and_attempts_come_from_the_template(settings):
    settings.LIFECYCLE = {**settings.LIFECYCLE, "MAX_ATTEMPTS": 7}
    manager = EmployeeFactory()
    employee = EmployeeFactory(manager=manager)
    template = ChecklistTemplate.objects.create(name="Join", kind=ChecklistKind.JOIN)
    TaskTemplate.objects.create(
        checklist=template, key="laptop", title="Prepare the laptop", assignee=Assignee.IT, due_offset_days=-3
    )
    TaskTemplate.objects.create(
        checklist=template, key="buddy", title="Pick a buddy", assignee=Assignee.MANAGER, due_offset_days=-1
    )
    TaskTemplate.objects.create(
        checklist=template, key="policy", title="Read the policy", assignee=Assignee.EMPLOYEE, due_offset_days=2
    )
    TaskTemplate.objects.create(
        checklist=template, key="auto", title="Auto", assignee=Assignee.SYSTEM, action="test_count", max_attempts=2
    )
    effective_at = timezone.now() + datetime.timedelta(days=10)
    run = start(employee, ChecklistKind.JOIN, effective_at=effective_at)
    tasks = {t.key.split(":")[1]: t for t in run.tasks.all()}
    assert tasks["laptop"].due_at == effective_at - datetime.timedelta(days=3)
    assert tasks["buddy"].due_at == effective_at - datetime.timedelta(days=1)
    assert tasks["policy"].due_at == effective_at + datetime.timedelta(days=2)
    assert (tasks["laptop"].assignee, tasks["buddy"].assignee, tasks["policy"].assignee) == (None, manager, employee)
    assert (tasks["laptop"].max_attempts, tasks["auto"].max_attempts) == (7, 2)
    assert tasks["auto"].status == TaskStatus.PENDING  # its time has not come


def test_no_task_is_created_overdue(django_capture_on_commit_callbacks):
    """A due time already past when a task is made (a late joiner, an immediate leaver, a retro-active
    move) becomes now for an automated task, which starts at once, and a day from now for a person's."""
    employee = EmployeeFactory(manager=EmployeeFactory())
    template = ChecklistTemplate.objects.create(name="Join late", kind=ChecklistKind.JOIN)
    for key, who, offset in (("kit", Assignee.SYSTEM, -21), ("buddy", Assignee.MANAGER, -2), ("day", Assignee.IT, 1)):
        TaskTemplate.objects.create(
            checklist=template,
            key=key,
            title=key,
            assignee=who,
            due_offset_days=offset,
            action="test_count" if who == Assignee.SYSTEM else "",
        )
    before = timezone.now()
    effective_at = before + datetime.timedelta(days=1)  # starts tomorrow: the kit was due 20 days ago
    with django_capture_on_commit_callbacks(execute=True):
        run = start(employee, ChecklistKind.JOIN, effective_at=effective_at)
    after = timezone.now()
    tasks = {t.key.split(":")[1]: t for t in run.tasks.all()}
    assert before <= tasks["kit"].due_at <= after and tasks["kit"].status == TaskStatus.DONE  # ran at once
    assert before + engine.runs.LATE_TASK_GRACE <= tasks["buddy"].due_at <= after + engine.runs.LATE_TASK_GRACE
    assert tasks["day"].due_at == effective_at + datetime.timedelta(days=1)  # in the future: as the template says
    assert not selectors.tasks_overdue().filter(run=run).exists()

    # Added by a flow later with a past due time: the same rule.
    old = before - datetime.timedelta(days=3)
    it_task = engine.task_add(run=run, key="late-it", title="Late", assignee_type=Assignee.IT, due_at=old)
    system = engine.task_add(run=run, key="late-auto", title="Auto", action="test_count", due_at=old)
    assert it_task.due_at - timezone.now() > engine.runs.LATE_TASK_GRACE - datetime.timedelta(minutes=1)
    assert before <= system.due_at <= timezone.now()
    assert not selectors.tasks_overdue(now=timezone.now()).filter(run=run).exclude(pk=system.pk).exists()


def test_every_checklist_kind_starts_with_its_own_audit_action():
    assert set(engine.RUN_STARTED_ACTIONS) == set(ChecklistKind.values)
    assert len(set(engine.RUN_STARTED_ACTIONS.values())) == len(ChecklistKind.values)
    assert set(engine.RUN_STARTED_ACTIONS.values()) <= set(AuditEvent.Action.values)


@pytest.mark.parametrize(
    ("kind", "action"),
    [
        (ChecklistKind.JOIN, "join_started"),
        (ChecklistKind.MOVE, "move_started"),
        (ChecklistKind.LEAVE, "leave_started"),
        (ChecklistKind.ACCESS, "access_started"),
    ],
)
def test_starting_a_run_records_the_typed_action_of_its_kind(kind, action):
    employee = EmployeeFactory()
    run = start(employee, kind=kind)

    event = AuditEvent.objects.get(target_type="offboarding.ChecklistRun", target_id=str(run.pk))
    assert event.action == action
    assert event.detail == {"employee": employee.pk, "event_date": str(run.event_date)}


def test_starting_twice_returns_the_open_run_and_creates_nothing_twice():
    make_template()
    employee = EmployeeFactory()
    later = timezone.now() + datetime.timedelta(days=3)
    first = start(employee, effective_at=later)
    second = start(employee, effective_at=later)
    assert first.pk == second.pk
    assert ChecklistRun.objects.count() == 1 and Task.objects.count() == 2


def test_a_run_without_tasks_stays_open_for_the_flow_to_add_tasks_then_closes():
    employee = EmployeeFactory()
    run = start(employee)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING  # a flow may still add its own tasks
    engine.run_advance(run=run)
    run.refresh_from_db()
    assert run.status == RunStatus.DONE


# --- Adding tasks, cancelling runs ---------------------------------------------------------------------


def test_task_add_is_idempotent_and_refuses_bad_input():
    run = start(EmployeeFactory(), effective_at=timezone.now() + datetime.timedelta(days=1))
    first = engine.task_add(run=run, key="child", title="Child", action="test_count")
    assert engine.task_add(run=run, key="child", title="Again", action="test_count").pk == first.pk
    with pytest.raises(ValidationError, match="Unknown action 'nope'"):
        engine.task_add(run=run, key="bad", title="Bad", action="nope")
    with pytest.raises(ValidationError, match="needs an automated action"):
        engine.task_add(run=run, key="bad", title="Bad")
    other = start(EmployeeFactory(), effective_at=timezone.now() + datetime.timedelta(days=1))
    with pytest.raises(ValidationError, match="another run"):
        engine.task_add(run=other, key="x", title="X", action="test_count", depends_on=[first])
    engine.task_skip(task=first, acting_user=None, reason="not needed")
    engine.run_advance(run=run)
    with pytest.raises(ValidationError, match="not open"):
        engine.task_add(run=run, key="late", title="Late", action="test_count")
    assert not Task.objects.filter(key__in=["bad", "x", "late"]).exists()


def test_task_add_many_is_idempotent_keeps_order_and_dependencies():
    run = start(EmployeeFactory())
    parent = engine.task_add(run=run, key="parent", title="Parent", action="test_count")
    first = engine.task_add(run=run, key="a", title="A", action="test_count")
    items = [
        {"key": "a", "title": "A again", "action": "test_count"},
        {"key": "b", "title": "B", "action": "test_count", "parent": parent, "depends_on": [first]},
        {"key": "b", "title": "B twice", "action": "test_count"},
    ]

    tasks = engine.task_add_many(run=run, tasks=items)

    assert [t.key for t in tasks] == ["a", "b", "b"] and tasks[0].pk == first.pk and tasks[1].pk == tasks[2].pk
    b = Task.objects.get(run=run, key="b")
    assert b.title == "B" and b.parent == parent and list(b.depends_on.all()) == [first]
    assert b.history.count() == 1  # created with its history row, like task_add
    assert [t.pk for t in engine.task_add_many(run=run, tasks=items)] == [t.pk for t in tasks]
    assert Task.objects.filter(run=run).count() == 3
    with pytest.raises(ValidationError):
        engine.task_add_many(run=run, tasks=[{"key": "c", "title": "C", "action": "no_such_action"}])
    engine.run_cancel(run=run, acting_user=None, reason="test")
    with pytest.raises(ValidationError):
        engine.task_add_many(run=run, tasks=[{"key": "d", "title": "D", "action": "test_count"}])


def test_a_leavers_revoke_fan_out_takes_the_same_queries_for_3_or_10_entitlements():
    """The fan-out parent adds its children, their history and dependencies, and queues them in
    a constant number of queries; each child then revokes one entitlement on its own."""
    template = ChecklistTemplate.objects.create(name="Revoke fan-out", kind=ChecklistKind.LEAVE)
    revoke = TaskTemplate.objects.create(
        checklist=template, key="revoke", title="Revoke", assignee=Assignee.SYSTEM, action="revoke_all_access"
    )
    after = TaskTemplate.objects.create(
        checklist=template, key="after", title="After", assignee=Assignee.SYSTEM, action="test_count", position=1
    )
    after.depends_on.add(revoke)

    def fan_out(size):
        employee = EmployeeFactory()
        for _ in range(size):
            EntitlementFactory(employee=employee)
        run = start(employee)  # the parent is queued; nothing runs (no commit in the test)
        parent = run.tasks.get(key__endswith=":revoke")
        with CaptureQueriesContext(connection) as queries:
            assert engine.task_execute(task_id=parent.pk) == "done"
        children = run.tasks.filter(parent=parent)
        assert children.count() == size
        assert {t.status for t in children} == {TaskStatus.QUEUED}
        assert set(run.tasks.get(key__endswith=":after").depends_on.all()) == {parent, *children}
        return len(queries)

    assert fan_out(3) == fan_out(10)


def test_cancelling_a_run_skips_its_open_tasks_and_starts_nothing(it_admin, django_capture_on_commit_callbacks):
    make_template()
    later = timezone.now() + datetime.timedelta(days=1)
    run = start(EmployeeFactory(), effective_at=later)
    with pytest.raises(ValidationError, match="reason"):
        engine.run_cancel(run=run, acting_user=it_admin, reason="")
    engine.run_cancel(run=run, acting_user=it_admin, reason="Resignation withdrawn")
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert set(run.tasks.values_list("status", "note")) == {
        (TaskStatus.SKIPPED, "Run cancelled: Resignation withdrawn")
    }
    assert run.history.first().history_user == it_admin
    event = AuditEvent.objects.get(action=AuditEvent.Action.RUN_CANCELLED, target_id=str(run.pk))
    assert (event.actor, event.detail) == (
        it_admin,
        {"kind": ChecklistKind.LEAVE, "reason": "Resignation withdrawn", "tasks_skipped": 2},
    )
    with django_capture_on_commit_callbacks(execute=True):
        engine.sweep(now=later + datetime.timedelta(days=1))
    assert calls == []
    # A new run of the same kind may start once the old one is closed.
    assert start(run.employee).pk != run.pk


# --- Figures ------------------------------------------------------------------------------------------


def test_time_to_provision_is_kept_when_the_join_run_is_done(it_admin):
    one_task_template(kind=ChecklistKind.JOIN, assignee=Assignee.IT, action="")
    effective_at = timezone.now() - datetime.timedelta(hours=5)
    run = start(EmployeeFactory(), ChecklistKind.JOIN, effective_at=effective_at)
    engine.task_complete(task=run.tasks.get(), acting_user=it_admin)
    run.refresh_from_db()
    assert run.status == RunStatus.DONE
    assert datetime.timedelta(hours=5) <= run.time_to_provision < datetime.timedelta(hours=5, minutes=1)
    assert run.time_to_deprovision is None


def test_time_to_provision_is_zero_when_ready_before_the_first_day(it_admin):
    one_task_template(kind=ChecklistKind.JOIN, assignee=Assignee.IT, action="")
    run = start(EmployeeFactory(), ChecklistKind.JOIN, effective_at=timezone.now() + datetime.timedelta(days=3))
    engine.task_complete(task=run.tasks.get(), acting_user=it_admin)
    run.refresh_from_db()
    assert run.time_to_provision == datetime.timedelta(0)


def test_time_to_deprovision_follows_the_last_revocation_confirmed():
    run = start(EmployeeFactory(), effective_at=timezone.now() + datetime.timedelta(days=1))
    cut_off = run.effective_at
    engine.run_record_revocation(run=run, at=cut_off + datetime.timedelta(minutes=10))
    engine.run_record_revocation(run=run, at=cut_off + datetime.timedelta(hours=2))
    engine.run_record_revocation(run=run, at=cut_off + datetime.timedelta(minutes=30))  # earlier: ignored
    run.refresh_from_db()
    assert run.time_to_deprovision == datetime.timedelta(hours=2)
    assert run.last_revocation_at == cut_off + datetime.timedelta(hours=2)
    other = start(EmployeeFactory(), effective_at=timezone.now() + datetime.timedelta(days=1))
    engine.run_record_revocation(run=other, at=other.effective_at - datetime.timedelta(hours=1))
    other.refresh_from_db()
    assert other.time_to_deprovision == datetime.timedelta(0)  # revoked before the cut-off: never negative


# --- Concurrency (PostgreSQL: real threads, real transactions) ------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_starts_for_the_same_employee_and_kind_make_one_run():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers (IMMEDIATE transactions): no real concurrency to test.")
    make_template()
    employee = EmployeeFactory()
    user = UserFactory()
    later = timezone.now() + datetime.timedelta(days=3)
    outcomes = run_at_once(*[lambda: start(employee, effective_at=later, acting_user=user).pk] * 4)
    assert kinds(outcomes) == ["ok"] * 4, outcomes
    runs = [run_id for _, run_id in outcomes]
    assert len(set(runs)) == 1
    assert ChecklistRun.objects.filter(employee=employee).count() == 1
    assert Task.objects.filter(run_id=runs[0]).count() == 2


@pytest.mark.parametrize("status", [RunStatus.DONE, RunStatus.CANCELLED])
def test_advancing_a_run_that_is_no_longer_open_queues_nothing(status):
    """Even with a runnable task left pending (as a concurrent cancel can leave one), a closed run
    starts nothing and stays as it is."""
    one_task_template(key="later", due_offset_days=1)
    run = start(EmployeeFactory())
    task = run.tasks.get(key__endswith=":later")
    assert task.status == TaskStatus.PENDING
    Task.objects.filter(pk=task.pk).update(due_at=timezone.now())
    ChecklistRun.objects.filter(pk=run.pk).update(status=status)
    run.refresh_from_db()

    assert engine.run_advance(run=run) == 0
    task.refresh_from_db()
    run.refresh_from_db()
    assert (task.status, run.status, run.completed_at) == (TaskStatus.PENDING, status, None)


def test_the_next_step_query_compiled_once_answers_as_the_orm_does():
    """run_advance reads a run's unfinished tasks through SQL compiled once per process: for every kind
    of task it gives what the ORM query gives, and marks runnable exactly the system tasks that may
    start now (due, not backing off, dependencies finished)."""
    from offboarding.engine import runs

    one_task_template(kind=ChecklistKind.MOVE, key="hold", assignee=Assignee.IT, action="")
    run = start(EmployeeFactory(), kind=ChecklistKind.MOVE)
    later = timezone.now() + datetime.timedelta(hours=1)

    def add(key, **fields):
        return engine.task_add(run=run, key=key, title=key, **({"action": "test_count"} | fields))

    add("ready")
    blocker = add("blocker")
    add("blocked", depends_on=[blocker])
    done = add("done")
    add("after-done", depends_on=[done])
    add("due-later", due_at=later)
    backing_off = add("backing-off")
    add("for-it", assignee_type=Assignee.IT, action="")
    Task.objects.filter(pk=done.pk).update(status=TaskStatus.DONE)
    Task.objects.filter(pk=blocker.pk).update(status=TaskStatus.QUEUED)
    Task.objects.filter(pk=backing_off.pk).update(not_before=later)
    runs._compiled_unfinished.clear()
    now = timezone.now()

    compiled = sorted(runs._unfinished_tasks(run.pk, now))
    assert runs._compiled_unfinished[connection.vendor] is not None, "compiled, not the ORM fallback"
    assert compiled == sorted(runs._unfinished_queryset(run.pk, now))
    by_key = dict(Task.objects.filter(run=run).values_list("pk", "key"))
    assert {by_key[pk] for pk, runnable in compiled if runnable} == {"ready", "after-done"}
    hold = next(key for key in by_key.values() if key.endswith(":hold"))
    assert {by_key[pk] for pk, _ in compiled} == {
        hold, "ready", "blocker", "blocked", "after-done", "due-later", "backing-off", "for-it",
    }  # fmt: skip
    assert runs._unfinished_tasks(run.pk + 1000, now) == []  # another run: nothing
    ChecklistRun.objects.filter(pk=run.pk).update(status=RunStatus.CANCELLED)
    assert runs._unfinished_tasks(run.pk, now) == []  # a run no longer open: nothing
