"""Overdue reminders (offboarding.engine.reminders): who is told, how often, and what the email links to."""

import datetime

import pytest
from django.core import mail
from django.utils import timezone

from accounts.models import EmployeeStatus
from accounts.tests.factories import EmployeeFactory
from offboarding import engine, selectors
from offboarding.engine import reminders
from offboarding.models import (
    Assignee,
    ChecklistKind,
    ChecklistRun,
    ChecklistTemplate,
    TaskTemplate,
)
from offboarding.tests.factories import make_template, one_task_template, start

pytestmark = pytest.mark.django_db


# --- Overdue -----------------------------------------------------------------------------------------


def _manual_run(*, assignee=Assignee.IT, due_days_ago=3, employee=None, **task):
    """A run with one manual task, started `due_days_ago` days ago and due then.

    No task is created overdue (`engine.task_add`), so the run is started now and the clock
    moved back, as if it had been started then and the days had passed.
    """
    one_task_template(assignee=assignee, action="", key="manual", title="Collect the badge", **task)
    run = start(employee or EmployeeFactory())
    then = timezone.now() - datetime.timedelta(days=due_days_ago)
    ChecklistRun.objects.filter(pk=run.pk).update(effective_at=then, created_at=then)
    run.tasks.update(due_at=then, created_at=then)
    run.refresh_from_db()
    return run


def test_overdue_selectors_find_unfinished_tasks_past_due():
    late = _manual_run()
    on_time = start(EmployeeFactory(), ChecklistKind.JOIN, effective_at=timezone.now() + datetime.timedelta(days=5))
    engine.task_add(run=on_time, key="later", title="Later", assignee_type=Assignee.IT, due_at=on_time.effective_at)
    assert list(selectors.tasks_overdue()) == [late.tasks.get()]
    assert list(selectors.runs_overdue()) == [late]
    progress = {r.pk: r for r in selectors.runs_with_progress()}
    assert (progress[late.pk].overdue_tasks, progress[on_time.pk].overdue_tasks) == (1, 0)
    engine.task_complete(task=late.tasks.get(), acting_user=None)
    assert list(selectors.tasks_overdue()) == []
    assert list(selectors.runs_overdue()) == []


def test_overdue_it_task_is_reminded_to_the_it_team_with_a_link(settings):
    settings.IT_TEAM_EMAIL = "it-team@example.com"
    settings.PORTAL_BASE_URL = "https://portal.example.com"
    run = _manual_run(knowledge_url="https://kb.example.com/badges")
    task = run.tasks.get()
    counts = engine.tasks_remind_overdue()
    assert counts == {"emails": 1, "tasks": 1, "errors": 0}
    (message,) = mail.outbox
    assert message.to == ["it-team@example.com"]
    assert message.subject == "Overdue: 1 task waiting for you in Portal"
    assert message.reply_to == []  # as before it went through portal.mail
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
    assert engine.tasks_remind_overdue(now=now)["tasks"] == 1
    assert engine.tasks_remind_overdue(now=now)["tasks"] == 0  # a second run at once sends nothing
    assert engine.tasks_remind_overdue(now=now + datetime.timedelta(days=1))["tasks"] == 0
    assert engine.tasks_remind_overdue(now=now + datetime.timedelta(days=2))["tasks"] == 1
    assert len(mail.outbox) == 2


def test_a_task_for_the_employee_or_manager_is_reminded_to_them_one_email_each(settings):
    manager = EmployeeFactory(work_email="morgan@example.com")
    employee = EmployeeFactory(manager=manager, work_email="erin@example.com", first_name="Erin")
    template = ChecklistTemplate.objects.create(name="Join people", kind=ChecklistKind.JOIN)
    for key, who in (("policy", Assignee.EMPLOYEE), ("training", Assignee.EMPLOYEE), ("buddy", Assignee.MANAGER)):
        TaskTemplate.objects.create(checklist=template, key=key, title=key.title(), assignee=who)
    run = start(employee, ChecklistKind.JOIN)
    assert engine.tasks_remind_overdue() == {"emails": 0, "tasks": 0, "errors": 0}  # none is created overdue
    assert run.tasks.count() == 3
    later = timezone.now() + engine.runs.LATE_TASK_GRACE + datetime.timedelta(hours=1)
    assert engine.tasks_remind_overdue(now=later) == {"emails": 2, "tasks": 3, "errors": 0}
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
    engine.tasks_remind_overdue()
    assert [m.to for m in mail.outbox] == [["me@home.example"]]


def test_blocked_automated_finished_and_cancelled_tasks_are_not_reminded():
    # Automated and blocked (waits for an automated task): no reminder.
    template = make_template(kind=ChecklistKind.JOIN)
    manual = TaskTemplate.objects.create(checklist=template, key="manual", title="Check", assignee=Assignee.IT)
    manual.depends_on.add(template.task_templates.get(key="second"))
    start(EmployeeFactory(), ChecklistKind.JOIN, effective_at=timezone.now() - datetime.timedelta(days=3))
    # Finished.
    done = _manual_run()
    engine.task_complete(task=done.tasks.get(), acting_user=None)
    # Cancelled run.
    cancelled = _manual_run()
    engine.run_cancel(run=cancelled, acting_user=None, reason="withdrawn")
    assert engine.tasks_remind_overdue()["tasks"] == 0
    assert mail.outbox == []


def test_a_failed_send_releases_the_reminder_for_the_next_run(monkeypatch):
    run = _manual_run()

    def broken(**kwargs):
        raise ConnectionRefusedError("SMTP down")

    monkeypatch.setattr(reminders, "email_send", broken)
    assert engine.tasks_remind_overdue() == {"emails": 0, "tasks": 0, "errors": 1}
    assert run.tasks.get().last_reminded_at is None
    monkeypatch.undo()
    assert engine.tasks_remind_overdue()["tasks"] == 1
