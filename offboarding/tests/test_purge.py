"""Retention purge: personal data anonymised in the row, its history, task texts and audit snapshots."""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.models import ConnectorType, Employee, EmployeeStatus
from accounts.tests.factories import ApplicationFactory, EmployeeFactory, EntitlementFactory, UserFactory
from offboarding import flows, services
from offboarding.actions import registry
from offboarding.demo import demo_templates_sync
from offboarding.models import ChecklistRun, RunStatus, Task, TaskStatus
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db

SECRETS = ("Petra", "Private", "petra.private@home.example", "petra@example.com", "+49 30 1234", "Hauptstr. 1")


@pytest.fixture
def settle(django_capture_on_commit_callbacks):
    def call(func, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return func(**kwargs)

    return call


@pytest.fixture
def petra():
    employee = EmployeeFactory(
        employee_number="P-0042",
        first_name="Petra",
        last_name="Private",
        work_email="petra@example.com",
        personal_email="petra.private@home.example",
        personal_phone="+49 30 1234",
        home_address="Hauptstr. 1, Berlin",
        user=UserFactory(username="petra", first_name="Petra", last_name="Private", email="petra@example.com"),
    )
    employee.title = "Senior Analyst"
    employee.save()  # a second history row
    return employee


def leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in (text or "")]


def test_scheduled_purge_anonymises_everywhere_and_keeps_the_record(settle, petra, settings):
    demo_templates_sync()
    EntitlementFactory(employee=petra, application=ApplicationFactory(name="Old ERP", connector=ConnectorType.MANUAL))
    it_user = UserFactory(username="it")
    run = settle(
        func=flows.employee_terminate,
        employee=petra,
        last_day=timezone.localdate(),
        acting_user=it_user,
        immediate=True,
    )
    manual = run.tasks.get(action="revoke_entitlement")
    assert "Petra Private" in manual.instructions and "petra@example.com" in manual.instructions
    settle(func=services.task_complete, task=manual, acting_user=it_user)
    purge = run.tasks.get(key="purge-personal-data")
    assert purge.due_at.date() == timezone.localdate() + datetime.timedelta(
        days=settings.LIFECYCLE["RETENTION_DAYS"] + 1
    )

    settle(func=services.sweep, now=purge.due_at - datetime.timedelta(days=1))
    petra.refresh_from_db()
    assert petra.anonymised_at is None

    settle(func=services.sweep, now=purge.due_at + datetime.timedelta(minutes=1))
    purge.refresh_from_db()
    assert purge.status == TaskStatus.DONE

    petra.refresh_from_db()
    assert petra.full_name == "Former employee P-0042"
    assert petra.work_email.endswith("@anonymised.invalid")
    assert (petra.personal_email, petra.personal_phone, petra.home_address) == ("", "", "")
    assert petra.anonymised_at is not None
    assert petra.status == EmployeeStatus.TERMINATED and petra.title == "Senior Analyst"  # the record stays
    assert Employee.objects.filter(pk=petra.pk).exists()

    history = list(Employee.history.filter(id=petra.pk))
    assert len(history) >= 3
    for row in history:
        values = [
            row.first_name,
            row.last_name,
            row.work_email,
            row.personal_email,
            row.personal_phone,
            row.home_address,
        ]
        assert not leaks(" ".join(values)), row.history_id

    for task in Task.objects.filter(run__employee=petra):
        assert not leaks(f"{task.title} {task.instructions} {task.note}"), task.key
    for row in Task.history.filter(run_id=run.pk):
        assert not leaks(f"{row.title} {row.instructions}"), row.history_id
    for event in AuditEvent.objects.all():
        assert not leaks(event.target_repr), event.target_repr

    petra.user.refresh_from_db()
    assert (petra.user.first_name, petra.user.email, petra.user.is_active) == ("", "", False)
    assert petra.user.username == "former-p-0042"

    assert AuditEvent.objects.filter(action=AuditEvent.Action.PURGE, target_id=str(petra.pk)).count() == 1
    unfinished = run.tasks.exclude(status__in=[TaskStatus.DONE, TaskStatus.SKIPPED])
    assert {t.assignee_type for t in unfinished} <= {"it", "manager"}  # people's tasks of the template
    for task in unfinished:
        settle(func=services.task_complete, task=task, acting_user=it_user)
    run.refresh_from_db()
    assert run.status == RunStatus.DONE


def test_purge_is_idempotent(petra):
    petra.status = EmployeeStatus.TERMINATED
    petra.save()
    first = flows.retention_purge(employee=petra, acting_user=None)
    assert first["already"] is False and first["history_rows"] >= 3
    assert flows.retention_purge(employee=petra, acting_user=None) == {"already": True}
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PURGE).count() == 1


def test_purge_action_twice_purges_once(petra):
    petra.status = EmployeeStatus.TERMINATED
    petra.save()
    run = ChecklistRun.objects.create(
        employee=petra, kind="leave", event_date=timezone.localdate(), effective_at=timezone.now()
    )
    task = services.task_add(run=run, key="purge-personal-data", title="Purge", action="purge_personal_data")
    registry["purge_personal_data"].func(task)
    registry["purge_personal_data"].func(task)
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PURGE).count() == 1


def test_purge_is_refused_for_someone_not_terminated(petra):
    with pytest.raises(ValidationError, match="not terminated"):
        flows.retention_purge(employee=petra, acting_user=None)
    petra.refresh_from_db()
    assert petra.first_name == "Petra" and petra.anonymised_at is None


def test_placeholder_emails_stay_unique(petra):
    other = EmployeeFactory(employee_number="P-0043", status=EmployeeStatus.TERMINATED)
    petra.status = EmployeeStatus.TERMINATED
    petra.save()
    flows.retention_purge(employee=petra, acting_user=None)
    flows.retention_purge(employee=other, acting_user=None)
    petra.refresh_from_db()
    other.refresh_from_db()
    assert petra.work_email != other.work_email
