"""The sweeper (recovery of lost and stalled tasks, closing idle runs) and overdue reminders."""

import datetime

import pytest
from django.core import mail
from django.utils import timezone

from accounts.models import EmployeeStatus
from accounts.tests.factories import EmployeeFactory
from offboarding import selectors, services
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
from offboarding.tests.test_engine import calls, make_template, one_task_template, register_test_actions, start

pytestmark = pytest.mark.django_db

register_test_actions()


@pytest.fixture(autouse=True)
def _clear_calls():
    calls.clear()


# --- Lost and stalled tasks ------------------------------------------------------------------------


def _queued_task():
    """A task queued but not delivered (the broker lost it)."""
    one_task_template()
    run = start(EmployeeFactory())  # not executed: on-commit callbacks are not run here
    task = run.tasks.get()
    assert task.status == TaskStatus.QUEUED
    return run, task


def test_sweeper_requeues_a_task_stuck_in_queued_and_it_runs_once(django_capture_on_commit_callbacks):
    run, task = _queued_task()
    with django_capture_on_commit_callbacks(execute=True):
        counts = services.sweep()
    assert counts["requeued_queued"] == 0  # not past the deadline yet
    assert calls == []
    Task.objects.filter(pk=task.pk).update(queued_at=timezone.now() - datetime.timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        counts = services.sweep()
    assert counts["requeued_queued"] == 1
    task.refresh_from_db()
    assert (task.status, task.attempts) == (TaskStatus.DONE, 1)
    assert calls == [task.pk]
    # The original delivery turns up after all: nothing to claim, no second effect.
    assert services.task_execute(task_id=task.pk) == "not-claimed"
    assert calls == [task.pk]
    run.refresh_from_db()
    assert run.status == RunStatus.DONE


def test_sweeper_takes_over_a_task_whose_worker_died_and_it_runs_once(django_capture_on_commit_callbacks):
    run, task = _queued_task()
    # A worker claimed it an hour ago, then died: running, started long ago, no outcome.
    Task.objects.filter(pk=task.pk).update(
        status=TaskStatus.RUNNING, started_at=timezone.now() - datetime.timedelta(hours=1), attempts=1
    )
    with django_capture_on_commit_callbacks(execute=True):
        counts = services.sweep()
    assert counts["requeued_running"] == 1
    task.refresh_from_db()
    assert (task.status, task.attempts) == (TaskStatus.DONE, 2)
    assert calls == [task.pk]
    with django_capture_on_commit_callbacks(execute=True):
        assert services.sweep()["requeued_running"] == 0
    assert calls == [task.pk]


def test_sweeper_leaves_a_task_running_within_its_deadline_alone(django_capture_on_commit_callbacks):
    run, task = _queued_task()
    services.task_claim(task_id=task.pk)
    with django_capture_on_commit_callbacks(execute=True):
        counts = services.sweep()
    assert counts["requeued_running"] == 0
    task.refresh_from_db()
    assert task.status == TaskStatus.RUNNING and calls == []


def test_a_task_whose_worker_died_on_its_last_attempt_is_failed_with_the_reason(django_capture_on_commit_callbacks):
    run, task = _queued_task()
    Task.objects.filter(pk=task.pk).update(
        status=TaskStatus.RUNNING,
        started_at=timezone.now() - datetime.timedelta(hours=1),
        attempts=task.max_attempts,
    )
    assert services.task_claim(task_id=task.pk) is None  # no attempts left to take over
    with django_capture_on_commit_callbacks(execute=True):
        counts = services.sweep()
    assert counts["failed_stalled"] == 1 and counts["requeued_running"] == 0
    task.refresh_from_db()
    assert task.status == TaskStatus.FAILED
    assert "stopped responding" in task.last_error
    assert calls == []


def test_sweeper_closes_an_open_run_with_nothing_left_to_do():
    run = start(EmployeeFactory())
    assert run.status == RunStatus.RUNNING
    assert services.sweep()["closed"] == 1
    run.refresh_from_db()
    assert run.status == RunStatus.DONE
    assert services.sweep()["closed"] == 0


# --- Overdue -----------------------------------------------------------------------------------------


def _manual_run(*, assignee=Assignee.IT, due_days_ago=3, employee=None, **task):
    one_task_template(assignee=assignee, action="", key="manual", title="Collect the badge", **task)
    effective_at = timezone.now() - datetime.timedelta(days=due_days_ago)
    return start(employee or EmployeeFactory(), effective_at=effective_at)


def test_overdue_selectors_find_unfinished_tasks_past_due():
    late = _manual_run()
    on_time = start(EmployeeFactory(), ChecklistKind.JOIN, effective_at=timezone.now() + datetime.timedelta(days=5))
    services.task_add(run=on_time, key="later", title="Later", assignee_type=Assignee.IT, due_at=on_time.effective_at)
    assert list(selectors.tasks_overdue()) == [late.tasks.get()]
    assert list(selectors.runs_overdue()) == [late]
    progress = {r.pk: r for r in selectors.runs_with_progress()}
    assert (progress[late.pk].overdue_tasks, progress[on_time.pk].overdue_tasks) == (1, 0)
    services.task_complete(task=late.tasks.get(), acting_user=None)
    assert list(selectors.tasks_overdue()) == []
    assert list(selectors.runs_overdue()) == []


def test_overdue_it_task_is_reminded_to_the_it_team_with_a_link(settings):
    settings.IT_TEAM_EMAIL = "it-team@example.com"
    settings.PORTAL_BASE_URL = "https://portal.example.com"
    run = _manual_run(knowledge_url="https://kb.example.com/badges")
    task = run.tasks.get()
    counts = services.tasks_remind_overdue()
    assert counts == {"emails": 1, "tasks": 1, "errors": 0}
    (message,) = mail.outbox
    assert message.to == ["it-team@example.com"]
    assert message.subject == "Overdue: 1 task waiting for you in Portal"
    assert "Collect the badge" in message.body
    assert run.employee.full_name in message.body
    assert "3 days overdue" in message.body
    assert f"https://portal.example.com/admin/offboarding/task/{task.pk}/change/" in message.body
    assert "https://kb.example.com/badges" in message.body
    html = message.alternatives[0].content
    assert f'href="https://portal.example.com/admin/offboarding/task/{task.pk}/change/"' in html
    task.refresh_from_db()
    assert task.last_reminded_at is not None


def test_reminders_repeat_at_most_every_interval(settings):
    settings.LIFECYCLE = {**settings.LIFECYCLE, "REMINDER_INTERVAL_DAYS": 2}
    _manual_run()
    now = timezone.now()
    assert services.tasks_remind_overdue(now=now)["tasks"] == 1
    assert services.tasks_remind_overdue(now=now)["tasks"] == 0  # a second run at once sends nothing
    assert services.tasks_remind_overdue(now=now + datetime.timedelta(days=1))["tasks"] == 0
    assert services.tasks_remind_overdue(now=now + datetime.timedelta(days=2))["tasks"] == 1
    assert len(mail.outbox) == 2


def test_a_task_for_the_employee_or_manager_is_reminded_to_them_one_email_each(settings):
    manager = EmployeeFactory(work_email="morgan@example.com")
    employee = EmployeeFactory(manager=manager, work_email="erin@example.com", first_name="Erin")
    template = ChecklistTemplate.objects.create(name="Join people", kind=ChecklistKind.JOIN)
    for key, who in (("policy", Assignee.EMPLOYEE), ("training", Assignee.EMPLOYEE), ("buddy", Assignee.MANAGER)):
        TaskTemplate.objects.create(checklist=template, key=key, title=key.title(), assignee=who)
    start(employee, ChecklistKind.JOIN, effective_at=timezone.now() - datetime.timedelta(days=1, hours=1))
    assert services.tasks_remind_overdue() == {"emails": 2, "tasks": 3, "errors": 0}
    by_address = {m.to[0]: m for m in mail.outbox}
    assert set(by_address) == {"morgan@example.com", "erin@example.com"}
    assert by_address["erin@example.com"].subject == "Overdue: 2 tasks waiting for you in Portal"
    assert "Hello Erin" in by_address["erin@example.com"].body
    assert settings.PORTAL_BASE_URL in by_address["erin@example.com"].body
    assert "/admin/" not in by_address["erin@example.com"].body  # people get self-service, not the admin


def test_a_leaver_is_reminded_at_their_personal_email_or_else_it(settings):
    settings.IT_TEAM_EMAIL = "it-team@example.com"
    gone = EmployeeFactory(status=EmployeeStatus.TERMINATED, personal_email="me@home.example")
    _manual_run(assignee=Assignee.EMPLOYEE, employee=gone)
    services.tasks_remind_overdue()
    assert [m.to for m in mail.outbox] == [["me@home.example"]]


def test_blocked_automated_finished_and_cancelled_tasks_are_not_reminded():
    # Automated and blocked (waits for an automated task): no reminder.
    template = make_template(kind=ChecklistKind.JOIN)
    manual = TaskTemplate.objects.create(checklist=template, key="manual", title="Check", assignee=Assignee.IT)
    manual.depends_on.add(template.task_templates.get(key="second"))
    start(EmployeeFactory(), ChecklistKind.JOIN, effective_at=timezone.now() - datetime.timedelta(days=3))
    # Finished.
    done = _manual_run()
    services.task_complete(task=done.tasks.get(), acting_user=None)
    # Cancelled run.
    cancelled = _manual_run()
    services.run_cancel(run=cancelled, acting_user=None, reason="withdrawn")
    assert services.tasks_remind_overdue()["tasks"] == 0
    assert mail.outbox == []


def test_a_failed_send_releases_the_reminder_for_the_next_run(monkeypatch):
    run = _manual_run()

    def broken(**kwargs):
        raise ConnectionRefusedError("SMTP down")

    monkeypatch.setattr(services, "send_mail", broken)
    assert services.tasks_remind_overdue() == {"emails": 0, "tasks": 0, "errors": 1}
    assert run.tasks.get().last_reminded_at is None
    monkeypatch.undo()
    assert services.tasks_remind_overdue()["tasks"] == 1


def test_the_queue_entry_points_call_the_services(monkeypatch):
    from offboarding import tasks

    assert set(tasks.sweep()) >= {"requeued_queued", "requeued_running", "started", "closed"}
    assert tasks.remind_overdue() == {"emails": 0, "tasks": 0, "errors": 0}
    assert ChecklistRun.objects.count() == 0


def test_the_schedules_exist_after_migrating():
    from django_q.models import Schedule

    funcs = set(Schedule.objects.values_list("func", flat=True))
    assert {"offboarding.tasks.sweep", "offboarding.tasks.remind_overdue"} <= funcs
