"""People acting on tasks (offboarding.engine.manual): complete, retry and skip, with reasons kept."""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.tests.factories import (
    EmployeeFactory,
)
from offboarding import engine
from offboarding.models import (
    Assignee,
    RunStatus,
    TaskStatus,
    TaskTemplate,
)
from offboarding.tests.actions import failures_left, manual_completions
from offboarding.tests.factories import make_template, one_task_template, start
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db


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
        engine.task_retry(task=task, acting_user=it_admin, reason="The target is back")
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
        engine.task_retry(task=task, acting_user=it_admin, reason="  ")
    engine.task_retry(task=task, acting_user=it_admin, reason="again")
    with pytest.raises(ValidationError, match="not failed"):
        engine.task_retry(task=task, acting_user=it_admin, reason="again")


def test_it_skips_a_task_with_a_reason_and_refuses_without_one(django_capture_on_commit_callbacks, it_admin):
    task = _failed_task(django_capture_on_commit_callbacks)
    with pytest.raises(ValidationError, match="reason"):
        engine.task_skip(task=task, acting_user=it_admin, reason="")
    task.refresh_from_db()
    assert task.status == TaskStatus.FAILED
    engine.task_skip(task=task, acting_user=it_admin, reason="Account never existed")
    task.refresh_from_db()
    assert (task.status, task.completed_by, task.note) == (TaskStatus.SKIPPED, it_admin, "Account never existed")
    row = task.history.first()
    assert (row.history_user, row.note, row.status) == (it_admin, "Account never existed", TaskStatus.SKIPPED)
    event = AuditEvent.objects.get(action=AuditEvent.Action.TASK_SKIPPED)
    assert event.actor == it_admin and event.detail["reason"] == "Account never existed"
    task.run.refresh_from_db()
    assert task.run.status == RunStatus.DONE
    with pytest.raises(ValidationError, match="only a failed or pending task"):
        engine.task_skip(task=task, acting_user=it_admin, reason="again")


def test_it_completes_a_manual_task_and_the_run_closes(it_admin):
    one_task_template(assignee=Assignee.IT, action="", key="badge", title="Collect the badge")
    run = start(EmployeeFactory())
    task = run.tasks.get()
    assert task.status == TaskStatus.PENDING
    engine.task_complete(task=task, acting_user=it_admin, note="Badge in the drawer")
    task.refresh_from_db()
    assert (task.status, task.completed_by, task.note) == (TaskStatus.DONE, it_admin, "Badge in the drawer")
    assert task.history.first().history_user == it_admin
    run.refresh_from_db()
    assert run.status == RunStatus.DONE
    assert engine.task_complete(task=task, acting_user=it_admin).status == TaskStatus.DONE  # idempotent


def test_manual_completion_is_refused_for_automated_or_blocked_tasks(it_admin):
    template = make_template()
    manual = TaskTemplate.objects.create(checklist=template, key="manual", title="Check by hand", assignee=Assignee.IT)
    manual.depends_on.add(template.task_templates.get(key="second"))
    run = start(EmployeeFactory(), effective_at=timezone.now() + datetime.timedelta(days=1))
    with pytest.raises(ValidationError, match="cannot be completed by hand"):
        engine.task_complete(task=run.tasks.get(key__endswith=":first"), acting_user=it_admin)
    with pytest.raises(ValidationError, match="waits for: Second"):
        engine.task_complete(task=run.tasks.get(key__endswith=":manual"), acting_user=it_admin)


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
    engine.sweep(now=timezone.now() + datetime.timedelta(days=1))
    task.refresh_from_db()
    assert task.status == TaskStatus.PENDING  # not queued again: a person has it
    engine.task_complete(task=task, acting_user=it_admin)
    assert manual_completions == [(task.pk, it_admin)]
    run.refresh_from_db()
    assert run.status == RunStatus.DONE
