"""Retention purge: when it runs, in bounded batches, idempotent, refused for someone not terminated.

That it forgets the person everywhere (every column of every table) is `test_retention_scan.py`.
"""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.models import ConnectorType, Employee, EmployeeStatus
from accounts.tests.factories import ApplicationFactory, EmployeeFactory, EntitlementFactory, UserFactory
from offboarding import engine
from offboarding.actions import registry
from offboarding.flows import retention as retention_flow
from offboarding.flows.common import aware, end_of_day
from offboarding.flows.leaver import employee_terminate
from offboarding.flows.retention import retention_purge, retention_purge_due
from offboarding.models import ChecklistRun, RunStatus, Task, TaskStatus
from offboarding.tests.factories import lifecycle_templates
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db


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


def test_daily_purge_runs_on_its_day_and_keeps_the_record(settle, petra, settings):
    lifecycle_templates()
    EntitlementFactory(employee=petra, application=ApplicationFactory(name="Old ERP", connector=ConnectorType.MANUAL))
    it_user = UserFactory(username="it")
    last_day = timezone.localdate()
    run = settle(func=employee_terminate, employee=petra, last_day=last_day, acting_user=it_user, immediate=True)
    manual = run.tasks.get(action="revoke_entitlement")
    assert "Petra Private" in manual.instructions and "petra@example.com" in manual.instructions
    settle(func=engine.task_complete, task=manual, acting_user=it_user)
    purge_day = last_day + datetime.timedelta(days=settings.LIFECYCLE["RETENTION_DAYS"] + 1)
    run.refresh_from_db()
    assert run.details["purge_due"] == purge_day.isoformat()
    assert not run.tasks.filter(action="purge_personal_data").exists()

    # The run does not wait for the purge: once the people's tasks are done, it closes.
    for task in run.tasks.exclude(status__in=[TaskStatus.DONE, TaskStatus.SKIPPED]):
        assert task.assignee_type in ("it", "manager"), task.key
        settle(func=engine.task_complete, task=task, acting_user=it_user)
    run.refresh_from_db()
    assert run.status == RunStatus.DONE

    day_before = aware(purge_day - datetime.timedelta(days=1), datetime.time(23, 59))
    assert retention_purge_due(now=day_before) == {"purged": 0, "already": 0, "errors": 0, "left": 0}
    petra.refresh_from_db()
    assert petra.anonymised_at is None

    assert retention_purge_due(now=aware(purge_day, datetime.time(3, 0)))["purged"] == 1

    petra.refresh_from_db()
    assert petra.full_name == "Former employee P-0042"
    assert petra.work_email.endswith("@anonymised.invalid")
    assert (petra.personal_email, petra.personal_phone, petra.home_address) == ("", "", "")
    assert petra.anonymised_at is not None
    assert petra.status == EmployeeStatus.TERMINATED and petra.title == "Senior Analyst"  # the record stays
    assert Employee.objects.filter(pk=petra.pk).exists()

    petra.user.refresh_from_db()
    assert (petra.user.first_name, petra.user.email, petra.user.is_active) == ("", "", False)
    assert petra.user.username == "former-p-0042"

    purge = AuditEvent.objects.get(action=AuditEvent.Action.PURGE, target_id=str(petra.pk))
    assert purge.actor is None and purge.actor_repr == "system"
    # Every day after: nothing more to do.
    assert retention_purge_due(now=aware(purge_day + datetime.timedelta(days=1)))["purged"] == 0
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PURGE).count() == 1


def terminated(number: str, last_day: datetime.date, **kwargs) -> Employee:
    return EmployeeFactory(employee_number=number, status=EmployeeStatus.TERMINATED, end_date=last_day, **kwargs)


def test_daily_purge_takes_only_those_due_in_bounded_batches(settings):
    settings.LIFECYCLE = {**settings.LIFECYCLE, "RETENTION_DAYS": 30}
    today = timezone.localdate()
    due = [terminated(f"D-{n}", today - datetime.timedelta(days=31 + n)) for n in range(5)]
    last_day_today = terminated("EDGE", today - datetime.timedelta(days=30))  # purged tomorrow
    recent = terminated("RECENT", today - datetime.timedelta(days=3))
    active = EmployeeFactory(employee_number="ACTIVE", end_date=today - datetime.timedelta(days=60))
    retention_purge(employee=due[0], acting_user=None)  # already anonymised: left alone

    calls = []
    real = retention_purge

    def spy(**kwargs):
        calls.append(kwargs["employee"].employee_number)
        return real(**kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(retention_flow, "retention_purge", spy)
        counts = retention_purge_due(batch_size=2)

    assert counts == {"purged": 4, "already": 0, "errors": 0, "left": 0}
    assert calls == ["D-4", "D-3", "D-2", "D-1"]  # oldest last day first
    assert Employee.objects.filter(pk__in=[e.pk for e in due], anonymised_at__isnull=False).count() == 5
    for other in (last_day_today, recent, active):
        other.refresh_from_db()
        assert other.anonymised_at is None, other.employee_number
    assert retention_purge_due() == {"purged": 0, "already": 0, "errors": 0, "left": 0}
    tomorrow = timezone.now() + datetime.timedelta(days=1)
    assert retention_purge_due(now=tomorrow)["purged"] == 1


def test_daily_purge_stops_at_its_time_budget_and_the_next_run_goes_on(settings):
    settings.LIFECYCLE = {**settings.LIFECYCLE, "RETENTION_DAYS": 30}
    old = timezone.localdate() - datetime.timedelta(days=400)
    for n in range(3):
        terminated(f"T-{n}", old)
    assert retention_purge_due(batch_size=1, max_seconds=0) == {"purged": 1, "already": 0, "errors": 0, "left": 2}
    assert retention_purge_due(batch_size=1)["purged"] == 2
    assert not Employee.objects.filter(anonymised_at__isnull=True).exists()


def test_one_failing_purge_does_not_stop_the_others(settings, caplog):
    settings.LIFECYCLE = {**settings.LIFECYCLE, "RETENTION_DAYS": 30}
    old = timezone.localdate() - datetime.timedelta(days=400)
    broken, fine = terminated("BROKEN", old), terminated("FINE", old)
    real = retention_purge

    def flaky(**kwargs):
        if kwargs["employee"].pk == broken.pk:
            raise RuntimeError("disk full")
        return real(**kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(retention_flow, "retention_purge", flaky)
        counts = retention_purge_due(batch_size=1)
    assert counts == {"purged": 1, "already": 0, "errors": 1, "left": 0}
    fine.refresh_from_db()
    broken.refresh_from_db()
    assert fine.anonymised_at is not None and broken.anonymised_at is None
    assert "Retention purge of employee" in caplog.text
    assert retention_purge_due()["purged"] == 1  # the next day tries again


def test_migration_lets_older_leave_runs_close(petra):
    """Runs made before the daily purge held a purge task due a year later; the migration skips it."""
    import importlib

    from django.apps import apps

    migration = importlib.import_module("offboarding.migrations.0005_purge_schedule")
    petra.status = EmployeeStatus.TERMINATED
    petra.save()
    run = ChecklistRun.objects.create(
        employee=petra, kind="leave", event_date=timezone.localdate(), effective_at=timezone.now()
    )
    due = end_of_day(run.event_date) + datetime.timedelta(days=365)
    legacy = engine.task_add(
        run=run, key="purge-personal-data", title="Purge", action="purge_personal_data", due_at=due
    )
    done = engine.task_add(run=run, key="other", title="Other", action="noop")
    Task.objects.filter(pk=done.pk).update(status=TaskStatus.DONE)

    migration.skip_legacy_purge_tasks(apps, None)

    legacy.refresh_from_db()
    run.refresh_from_db()
    assert legacy.status == TaskStatus.SKIPPED and "daily retention purge" in legacy.note
    assert run.details["purge_due"] == timezone.localtime(due).date().isoformat()
    assert engine.sweep()["closed"] == 1
    run.refresh_from_db()
    assert run.status == RunStatus.DONE


def test_purge_is_idempotent(petra):
    petra.status = EmployeeStatus.TERMINATED
    petra.save()
    first = retention_purge(employee=petra, acting_user=None)
    assert first["already"] is False and first["history_rows"] >= 3
    assert retention_purge(employee=petra, acting_user=None) == {"already": True}
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PURGE).count() == 1


def test_purge_action_twice_purges_once(petra):
    petra.status = EmployeeStatus.TERMINATED
    petra.save()
    run = ChecklistRun.objects.create(
        employee=petra, kind="leave", event_date=timezone.localdate(), effective_at=timezone.now()
    )
    task = engine.task_add(run=run, key="purge-personal-data", title="Purge", action="purge_personal_data")
    registry["purge_personal_data"].func(task)
    registry["purge_personal_data"].func(task)
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PURGE).count() == 1


def test_purge_is_refused_for_someone_not_terminated(petra):
    with pytest.raises(ValidationError, match="not terminated"):
        retention_purge(employee=petra, acting_user=None)
    petra.refresh_from_db()
    assert petra.first_name == "Petra" and petra.anonymised_at is None


def test_placeholder_emails_stay_unique(petra):
    other = EmployeeFactory(employee_number="P-0043", status=EmployeeStatus.TERMINATED)
    petra.status = EmployeeStatus.TERMINATED
    petra.save()
    retention_purge(employee=petra, acting_user=None)
    retention_purge(employee=other, acting_user=None)
    petra.refresh_from_db()
    other.refresh_from_db()
    assert petra.work_email != other.work_email
