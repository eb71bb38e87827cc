"""The lifecycle engine: materialising, claiming, dependencies, retries, people acting, figures.

The queue runs in sync mode (config.test_settings); `django_capture_on_commit_callbacks(execute=True)`
runs what was enqueued after commit, as a worker would. Throwaway actions are registered here.
"""

import datetime
import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, connections
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
from offboarding import services
from offboarding.actions import Handoff, register, registry
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
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db

calls: list[int] = []
# task key suffix -> how many more times the "test_flaky" action fails for it
failures_left: dict[str, int] = {}
manual_completions: list[tuple[int, object]] = []


def _flaky(task):
    name = task.key.split(":")[-1]
    calls.append(task.pk)
    if failures_left.get(name, 0) != 0:
        failures_left[name] -= 1
        raise ConnectionError(f"target unavailable for {name}")
    return {"ok": True}


def _hand_off(task):
    calls.append(task.pk)
    return Handoff(instructions="Remove the account by hand.", assignee_type=task.params.get("to", Assignee.IT))


def _confirm(task, acting_user):
    manual_completions.append((task.pk, acting_user))


TEST_ACTIONS = {
    "test_count": ("Count calls (test)", lambda task: calls.append(task.pk) or {"n": len(calls)}, None),
    "test_flaky": ("Fail as told, then succeed (test)", _flaky, None),
    "test_handoff": ("Hand off to a person (test)", _hand_off, _confirm),
    "test_bad_result": ("Return a non-dict (test)", lambda task: "oops", None),
}


def register_test_actions():
    for name, (label, func, on_manual_complete) in TEST_ACTIONS.items():
        if name not in registry:
            register(name, label, on_manual_complete=on_manual_complete)(func)


register_test_actions()


@pytest.fixture(autouse=True)
def _reset_test_actions():
    calls.clear()
    failures_left.clear()
    manual_completions.clear()
    yield


def make_template(kind=ChecklistKind.LEAVE, name=None, **scopes):
    """A template with two automated tasks: `first`, then `second` (depends on first)."""
    template = ChecklistTemplate.objects.create(name=name or f"T {kind} {ChecklistTemplate.objects.count()}", kind=kind)
    for field in ("roles", "departments", "locations"):
        if field in scopes:
            getattr(template, field).set(scopes[field])
    if "employment_types" in scopes:
        template.employment_types = scopes["employment_types"]
        template.save()
    first = TaskTemplate.objects.create(
        checklist=template, key="first", title="First", assignee=Assignee.SYSTEM, action="test_count"
    )
    second = TaskTemplate.objects.create(
        checklist=template, key="second", title="Second", assignee=Assignee.SYSTEM, action="test_count", position=1
    )
    second.depends_on.add(first)
    return template


def start(employee, kind=ChecklistKind.LEAVE, *, effective_at=None, acting_user=None):
    effective_at = effective_at or timezone.now()
    return services.run_start(
        employee=employee,
        kind=kind,
        event_date=timezone.localdate(effective_at),
        acting_user=acting_user,
        effective_at=effective_at,
    )


def one_task_template(kind=ChecklistKind.LEAVE, **task):
    template = ChecklistTemplate.objects.create(name=f"One {kind} {ChecklistTemplate.objects.count()}", kind=kind)
    fields = {"key": "only", "title": "Only", "assignee": Assignee.SYSTEM, "action": "test_count", **task}
    TaskTemplate.objects.create(checklist=template, **fields)
    return template


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

    chosen = services.templates_for(employee=employee, kind=ChecklistKind.LEAVE)
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


def test_every_checklist_kind_starts_with_its_own_audit_action():
    assert set(services.RUN_STARTED_ACTIONS) == set(ChecklistKind.values)
    assert len(set(services.RUN_STARTED_ACTIONS.values())) == len(ChecklistKind.values)
    assert set(services.RUN_STARTED_ACTIONS.values()) <= set(AuditEvent.Action.values)


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
    services.run_advance(run=run)
    run.refresh_from_db()
    assert run.status == RunStatus.DONE


# --- Claiming and dependencies -----------------------------------------------------------------------


def test_second_delivery_of_a_task_does_nothing():
    make_template()
    run = start(EmployeeFactory())
    first = run.tasks.get(key__endswith=":first")
    assert first.status == TaskStatus.QUEUED
    assert services.task_execute(task_id=first.pk) == "done"
    assert services.task_execute(task_id=first.pk) == "not-claimed"
    assert calls == [first.pk]


def test_a_delivery_while_the_task_runs_elsewhere_finds_nothing_to_claim():
    make_template()
    run = start(EmployeeFactory())
    first = run.tasks.get(key__endswith=":first")
    assert services.task_claim(task_id=first.pk) is not None  # a worker has it
    assert services.task_claim(task_id=first.pk) is None
    assert services.task_execute(task_id=first.pk) == "not-claimed"
    assert calls == []


def test_a_late_original_delivery_cannot_overwrite_the_outcome_of_the_takeover():
    make_template()
    run = start(EmployeeFactory())
    first = run.tasks.get(key__endswith=":first")
    stale = services.task_claim(task_id=first.pk, now=timezone.now() - datetime.timedelta(hours=1))
    assert stale is not None
    assert services.task_execute(task_id=first.pk) == "done"  # takes over the stale claim
    # The original worker wakes up and fails: its outcome is discarded.
    assert services._task_failed(stale, RuntimeError("late")) == "superseded"
    first.refresh_from_db()
    assert (first.status, first.attempts, first.last_error) == (TaskStatus.DONE, 2, "")


def test_dependencies_gate_tasks(django_capture_on_commit_callbacks):
    make_template()
    run = start(EmployeeFactory())
    first = run.tasks.get(key__endswith=":first")
    second = run.tasks.get(key__endswith=":second")
    assert (first.status, second.status) == (TaskStatus.QUEUED, TaskStatus.PENDING)
    assert list(services.runnable_tasks(run=run)) == []
    with django_capture_on_commit_callbacks(execute=True):
        services.task_execute(task_id=first.pk)
    second.refresh_from_db()
    assert second.status == TaskStatus.DONE
    assert calls == [first.pk, second.pk]


def test_a_skipped_dependency_releases_the_tasks_waiting_for_it(django_capture_on_commit_callbacks, it_admin):
    make_template()
    run = start(EmployeeFactory(), effective_at=timezone.now() - datetime.timedelta(minutes=1))
    first = run.tasks.get(key__endswith=":first")
    Task.objects.filter(pk=first.pk).update(status=TaskStatus.FAILED, last_error="boom")
    with django_capture_on_commit_callbacks(execute=True):
        services.task_skip(task=first, acting_user=it_admin, reason="Done by hand")
    run.refresh_from_db()
    assert run.tasks.get(key__endswith=":second").status == TaskStatus.DONE
    assert run.status == RunStatus.DONE


def test_future_tasks_wait_for_the_sweeper(django_capture_on_commit_callbacks):
    make_template()
    later = timezone.now() + datetime.timedelta(days=3)
    run = start(EmployeeFactory(), effective_at=later)
    assert set(run.tasks.values_list("status", flat=True)) == {TaskStatus.PENDING}
    with django_capture_on_commit_callbacks(execute=True):
        services.sweep(now=later - datetime.timedelta(minutes=1))
    assert calls == []
    with django_capture_on_commit_callbacks(execute=True):
        services.sweep(now=later + datetime.timedelta(minutes=1))
    assert len(calls) == 1  # the second waits for the first; the next sweep picks it up
    with django_capture_on_commit_callbacks(execute=True):
        services.sweep(now=later + datetime.timedelta(minutes=2))
    assert len(calls) == 2
    run.refresh_from_db()
    assert run.status == RunStatus.DONE


# --- Failures and retries -------------------------------------------------------------------------


def _sweep_until_settled(task, django_capture_on_commit_callbacks, limit=20):
    """Advance time past each backoff with the sweeper until the task is done or failed."""
    for _ in range(limit):
        task.refresh_from_db()
        if task.status in (TaskStatus.DONE, TaskStatus.FAILED):
            return task
        assert task.status == TaskStatus.PENDING and task.not_before is not None
        with django_capture_on_commit_callbacks(execute=True):
            services.sweep(now=task.not_before + datetime.timedelta(seconds=1))
    raise AssertionError("the task did not settle")


def test_an_action_failing_three_times_then_succeeding_ends_done_with_four_attempts(
    django_capture_on_commit_callbacks,
):
    one_task_template(action="test_flaky")
    failures_left["only"] = 3
    with django_capture_on_commit_callbacks(execute=True):
        run = start(EmployeeFactory())
    task = run.tasks.get()
    task.refresh_from_db()
    assert task.status == TaskStatus.PENDING and task.attempts == 1
    assert "target unavailable" in task.last_error
    first_backoff = task.not_before - timezone.now()
    assert datetime.timedelta(seconds=20) < first_backoff <= datetime.timedelta(seconds=30)
    task = _sweep_until_settled(task, django_capture_on_commit_callbacks)
    assert (task.status, task.attempts, task.last_error, task.result) == (TaskStatus.DONE, 4, "", {"ok": True})
    assert len(calls) == 4
    run.refresh_from_db()
    assert run.status == RunStatus.DONE


def test_backoff_grows_exponentially_up_to_a_maximum(settings):
    settings.LIFECYCLE = {
        **settings.LIFECYCLE,
        "BACKOFF_BASE": datetime.timedelta(seconds=10),
        "BACKOFF_MAX": datetime.timedelta(seconds=60),
    }
    assert [services._backoff(n).total_seconds() for n in (1, 2, 3, 4, 5)] == [10, 20, 40, 60, 60]


def test_an_always_failing_action_ends_failed_after_max_attempts_with_its_error(django_capture_on_commit_callbacks):
    one_task_template(action="test_flaky", max_attempts=3)
    failures_left["only"] = -1  # forever
    with django_capture_on_commit_callbacks(execute=True):
        run = start(EmployeeFactory())
    task = _sweep_until_settled(run.tasks.get(), django_capture_on_commit_callbacks)
    assert (task.status, task.attempts, task.max_attempts) == (TaskStatus.FAILED, 3, 3)
    assert task.last_error.startswith("Attempt 3 of 3: ConnectionError: target unavailable for only")
    assert len(calls) == 3
    # A failed task waits for a person: sweeping again changes nothing.
    with django_capture_on_commit_callbacks(execute=True):
        services.sweep(now=timezone.now() + datetime.timedelta(days=1))
    task.refresh_from_db()
    assert task.status == TaskStatus.FAILED and len(calls) == 3
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING


def test_an_action_returning_something_else_than_a_dict_fails_the_attempt(django_capture_on_commit_callbacks):
    one_task_template(action="test_bad_result", max_attempts=1)
    with django_capture_on_commit_callbacks(execute=True):
        run = start(EmployeeFactory())
    task = run.tasks.get()
    assert task.status == TaskStatus.FAILED
    assert "returned str, not a dict or Handoff" in task.last_error


# --- People acting: retry, skip, complete ---------------------------------------------------------------


def _failed_task(django_capture_on_commit_callbacks):
    one_task_template(action="test_flaky", max_attempts=1)
    failures_left["only"] = 1
    with django_capture_on_commit_callbacks(execute=True):
        run = start(EmployeeFactory())
    task = run.tasks.get()
    assert task.status == TaskStatus.FAILED
    return task


def test_it_retries_a_failed_task_with_a_reason_kept_in_history(django_capture_on_commit_callbacks, it_admin):
    task = _failed_task(django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        services.task_retry(task=task, acting_user=it_admin, reason="The target is back")
    task.refresh_from_db()
    assert (task.status, task.attempts) == (TaskStatus.DONE, 1)
    retried = task.history.filter(note="The target is back").get()
    assert retried.history_user == it_admin and retried.status == TaskStatus.PENDING
    assert AuditEvent.objects.filter(actor=it_admin, action=AuditEvent.Action.TASK_RETRIED).count() == 1
    task.run.refresh_from_db()
    assert task.run.status == RunStatus.DONE


def test_retry_needs_a_reason_and_a_failed_task(django_capture_on_commit_callbacks, it_admin):
    task = _failed_task(django_capture_on_commit_callbacks)
    with pytest.raises(ValidationError, match="reason"):
        services.task_retry(task=task, acting_user=it_admin, reason="  ")
    services.task_retry(task=task, acting_user=it_admin, reason="again")
    with pytest.raises(ValidationError, match="not failed"):
        services.task_retry(task=task, acting_user=it_admin, reason="again")


def test_it_skips_a_task_with_a_reason_and_refuses_without_one(django_capture_on_commit_callbacks, it_admin):
    task = _failed_task(django_capture_on_commit_callbacks)
    with pytest.raises(ValidationError, match="reason"):
        services.task_skip(task=task, acting_user=it_admin, reason="")
    task.refresh_from_db()
    assert task.status == TaskStatus.FAILED
    services.task_skip(task=task, acting_user=it_admin, reason="Account never existed")
    task.refresh_from_db()
    assert (task.status, task.completed_by, task.note) == (TaskStatus.SKIPPED, it_admin, "Account never existed")
    row = task.history.first()
    assert (row.history_user, row.note, row.status) == (it_admin, "Account never existed", TaskStatus.SKIPPED)
    event = AuditEvent.objects.get(action=AuditEvent.Action.TASK_SKIPPED)
    assert event.actor == it_admin and event.detail["reason"] == "Account never existed"
    task.run.refresh_from_db()
    assert task.run.status == RunStatus.DONE
    with pytest.raises(ValidationError, match="only a failed or pending task"):
        services.task_skip(task=task, acting_user=it_admin, reason="again")


def test_it_completes_a_manual_task_and_the_run_closes(it_admin):
    one_task_template(assignee=Assignee.IT, action="", key="badge", title="Collect the badge")
    run = start(EmployeeFactory())
    task = run.tasks.get()
    assert task.status == TaskStatus.PENDING
    services.task_complete(task=task, acting_user=it_admin, note="Badge in the drawer")
    task.refresh_from_db()
    assert (task.status, task.completed_by, task.note) == (TaskStatus.DONE, it_admin, "Badge in the drawer")
    assert task.history.first().history_user == it_admin
    run.refresh_from_db()
    assert run.status == RunStatus.DONE
    assert services.task_complete(task=task, acting_user=it_admin).status == TaskStatus.DONE  # idempotent


def test_manual_completion_is_refused_for_automated_or_blocked_tasks(it_admin):
    template = make_template()
    manual = TaskTemplate.objects.create(checklist=template, key="manual", title="Check by hand", assignee=Assignee.IT)
    manual.depends_on.add(template.task_templates.get(key="second"))
    run = start(EmployeeFactory(), effective_at=timezone.now() + datetime.timedelta(days=1))
    with pytest.raises(ValidationError, match="cannot be completed by hand"):
        services.task_complete(task=run.tasks.get(key__endswith=":first"), acting_user=it_admin)
    with pytest.raises(ValidationError, match="waits for: Second"):
        services.task_complete(task=run.tasks.get(key__endswith=":manual"), acting_user=it_admin)


def test_a_handed_off_task_goes_to_a_person_whose_completion_runs_the_hook(
    django_capture_on_commit_callbacks, it_admin
):
    manager = EmployeeFactory()
    one_task_template(action="test_handoff", params={"to": Assignee.MANAGER})
    with django_capture_on_commit_callbacks(execute=True):
        run = start(EmployeeFactory(manager=manager))
    task = run.tasks.get()
    assert (task.status, task.assignee_type, task.assignee) == (TaskStatus.PENDING, Assignee.MANAGER, manager)
    assert "Remove the account by hand." in task.instructions
    services.sweep(now=timezone.now() + datetime.timedelta(days=1))
    task.refresh_from_db()
    assert task.status == TaskStatus.PENDING  # not queued again: a person has it
    services.task_complete(task=task, acting_user=it_admin)
    assert manual_completions == [(task.pk, it_admin)]
    run.refresh_from_db()
    assert run.status == RunStatus.DONE


# --- Adding tasks, cancelling runs ---------------------------------------------------------------------


def test_task_add_is_idempotent_and_refuses_bad_input():
    run = start(EmployeeFactory(), effective_at=timezone.now() + datetime.timedelta(days=1))
    first = services.task_add(run=run, key="child", title="Child", action="test_count")
    assert services.task_add(run=run, key="child", title="Again", action="test_count").pk == first.pk
    with pytest.raises(ValidationError, match="Unknown action 'nope'"):
        services.task_add(run=run, key="bad", title="Bad", action="nope")
    with pytest.raises(ValidationError, match="needs an automated action"):
        services.task_add(run=run, key="bad", title="Bad")
    other = start(EmployeeFactory(), effective_at=timezone.now() + datetime.timedelta(days=1))
    with pytest.raises(ValidationError, match="another run"):
        services.task_add(run=other, key="x", title="X", action="test_count", depends_on=[first])
    services.task_skip(task=first, acting_user=None, reason="not needed")
    services.run_advance(run=run)
    with pytest.raises(ValidationError, match="not open"):
        services.task_add(run=run, key="late", title="Late", action="test_count")
    assert not Task.objects.filter(key__in=["bad", "x", "late"]).exists()


def test_task_add_many_is_idempotent_keeps_order_and_dependencies():
    run = start(EmployeeFactory())
    parent = services.task_add(run=run, key="parent", title="Parent", action="test_count")
    first = services.task_add(run=run, key="a", title="A", action="test_count")
    items = [
        {"key": "a", "title": "A again", "action": "test_count"},
        {"key": "b", "title": "B", "action": "test_count", "parent": parent, "depends_on": [first]},
        {"key": "b", "title": "B twice", "action": "test_count"},
    ]

    tasks = services.task_add_many(run=run, tasks=items)

    assert [t.key for t in tasks] == ["a", "b", "b"] and tasks[0].pk == first.pk and tasks[1].pk == tasks[2].pk
    b = Task.objects.get(run=run, key="b")
    assert b.title == "B" and b.parent == parent and list(b.depends_on.all()) == [first]
    assert b.history.count() == 1  # created with its history row, like task_add
    assert [t.pk for t in services.task_add_many(run=run, tasks=items)] == [t.pk for t in tasks]
    assert Task.objects.filter(run=run).count() == 3
    with pytest.raises(ValidationError):
        services.task_add_many(run=run, tasks=[{"key": "c", "title": "C", "action": "no_such_action"}])
    services.run_cancel(run=run, acting_user=None, reason="test")
    with pytest.raises(ValidationError):
        services.task_add_many(run=run, tasks=[{"key": "d", "title": "D", "action": "test_count"}])


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
            assert services.task_execute(task_id=parent.pk) == "done"
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
        services.run_cancel(run=run, acting_user=it_admin, reason="")
    services.run_cancel(run=run, acting_user=it_admin, reason="Resignation withdrawn")
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
        services.sweep(now=later + datetime.timedelta(days=1))
    assert calls == []
    # A new run of the same kind may start once the old one is closed.
    assert start(run.employee).pk != run.pk


# --- Figures ------------------------------------------------------------------------------------------


def test_time_to_provision_is_kept_when_the_join_run_is_done(it_admin):
    one_task_template(kind=ChecklistKind.JOIN, assignee=Assignee.IT, action="")
    effective_at = timezone.now() - datetime.timedelta(hours=5)
    run = start(EmployeeFactory(), ChecklistKind.JOIN, effective_at=effective_at)
    services.task_complete(task=run.tasks.get(), acting_user=it_admin)
    run.refresh_from_db()
    assert run.status == RunStatus.DONE
    assert datetime.timedelta(hours=5) <= run.time_to_provision < datetime.timedelta(hours=5, minutes=1)
    assert run.time_to_deprovision is None


def test_time_to_provision_is_zero_when_ready_before_the_first_day(it_admin):
    one_task_template(kind=ChecklistKind.JOIN, assignee=Assignee.IT, action="")
    run = start(EmployeeFactory(), ChecklistKind.JOIN, effective_at=timezone.now() + datetime.timedelta(days=3))
    services.task_complete(task=run.tasks.get(), acting_user=it_admin)
    run.refresh_from_db()
    assert run.time_to_provision == datetime.timedelta(0)


def test_time_to_deprovision_follows_the_last_revocation_confirmed():
    run = start(EmployeeFactory(), effective_at=timezone.now() + datetime.timedelta(days=1))
    cut_off = run.effective_at
    services.run_record_revocation(run=run, at=cut_off + datetime.timedelta(minutes=10))
    services.run_record_revocation(run=run, at=cut_off + datetime.timedelta(hours=2))
    services.run_record_revocation(run=run, at=cut_off + datetime.timedelta(minutes=30))  # earlier: ignored
    run.refresh_from_db()
    assert run.time_to_deprovision == datetime.timedelta(hours=2)
    assert run.last_revocation_at == cut_off + datetime.timedelta(hours=2)
    other = start(EmployeeFactory(), effective_at=timezone.now() + datetime.timedelta(days=1))
    services.run_record_revocation(run=other, at=other.effective_at - datetime.timedelta(hours=1))
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
    barrier = threading.Barrier(4)
    runs, errors = [], []

    def go():
        try:
            barrier.wait(timeout=10)
            runs.append(start(employee, effective_at=later, acting_user=user).pk)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=go) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(set(runs)) == 1
    assert ChecklistRun.objects.filter(employee=employee).count() == 1
    assert Task.objects.filter(run_id=runs[0]).count() == 2


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_deliveries_claim_once():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers (IMMEDIATE transactions): no real concurrency to test.")
    one_task_template()
    run = start(EmployeeFactory(), effective_at=timezone.now() + datetime.timedelta(days=1))
    task = run.tasks.get()
    Task.objects.filter(pk=task.pk).update(status=TaskStatus.QUEUED, queued_at=timezone.now())  # as if enqueued
    barrier = threading.Barrier(6)
    outcomes = []

    def deliver():
        try:
            barrier.wait(timeout=10)
            outcomes.append(services.task_execute(task_id=task.pk))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["done"] + ["not-claimed"] * 5
    assert calls == [task.pk]
