"""The lifecycle engine: materialising, claiming, dependencies, retries, sweeping."""

import datetime

import pytest
from django.utils import timezone

from accounts.tests.factories import EmployeeFactory
from offboarding import services
from offboarding.actions import register, registry
from offboarding.models import Assignee, ChecklistKind, ChecklistTemplate, RunStatus, Task, TaskStatus, TaskTemplate

pytestmark = pytest.mark.django_db

calls: list[int] = []


@pytest.fixture(autouse=True)
def counting_action():
    if "test_count" not in registry:
        register("test_count", "Count calls (test)")(lambda task: calls.append(task.pk) or {"n": len(calls)})
    calls.clear()
    yield


def _template(kind=ChecklistKind.LEAVE):
    template = ChecklistTemplate.objects.create(name=f"T {kind}", kind=kind)
    first = TaskTemplate.objects.create(
        checklist=template, key="first", title="First", assignee=Assignee.SYSTEM, action="test_count"
    )
    second = TaskTemplate.objects.create(
        checklist=template, key="second", title="Second", assignee=Assignee.SYSTEM, action="test_count", position=1
    )
    second.depends_on.add(first)
    return template


def test_run_executes_automated_tasks_in_dependency_order_and_closes(django_capture_on_commit_callbacks):
    _template()
    employee = EmployeeFactory()
    with django_capture_on_commit_callbacks(execute=True):
        run = services.run_start(
            employee=employee,
            kind=ChecklistKind.LEAVE,
            event_date=timezone.localdate(),
            acting_user=None,
            effective_at=timezone.now(),
        )
    run.refresh_from_db()
    first, second = Task.objects.filter(run=run).order_by("id")
    assert calls == [first.pk, second.pk]
    assert {t.status for t in run.tasks.all()} == {TaskStatus.DONE}
    assert run.status == RunStatus.DONE


def test_second_delivery_of_a_task_does_nothing(django_capture_on_commit_callbacks):
    _template()
    employee = EmployeeFactory()
    run = services.run_start(
        employee=employee,
        kind=ChecklistKind.LEAVE,
        event_date=timezone.localdate(),
        acting_user=None,
        effective_at=timezone.now(),
    )
    first = run.tasks.get(key__endswith=":first")
    assert first.status == TaskStatus.QUEUED
    assert services.task_execute(task_id=first.pk) == "done"
    assert services.task_execute(task_id=first.pk) == "not-claimed"
    assert calls == [first.pk]


def test_future_tasks_wait_for_the_sweeper(django_capture_on_commit_callbacks):
    _template()
    employee = EmployeeFactory()
    later = timezone.now() + datetime.timedelta(days=3)
    run = services.run_start(
        employee=employee, kind=ChecklistKind.LEAVE, event_date=later.date(), acting_user=None, effective_at=later
    )
    assert set(run.tasks.values_list("status", flat=True)) == {TaskStatus.PENDING}
    with django_capture_on_commit_callbacks(execute=True):
        services.sweep(now=later + datetime.timedelta(minutes=1))
    assert len(calls) == 1  # the second waits for the first; sweeping again picks it up
