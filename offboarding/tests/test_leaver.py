"""Leaver: immediate and future-dated termination, the cut-off in order, returns and reminders,
the retention purge scheduled, bad input refused, one run for concurrent terminations."""

import datetime

import pytest
from django.contrib.sessions.models import Session
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from guardian.shortcuts import assign_perm

from accounts.models import (
    DECIDE_STEP_PERM,
    ApprovalStep,
    ApprovalStepKind,
    ApprovalStepStatus,
    ConnectorType,
    EmployeeStatus,
    EntitlementStatus,
)
from accounts.tests.factories import (
    AccessRequestFactory,
    ApplicationFactory,
    EmployeeFactory,
    EntitlementFactory,
    UserFactory,
)
from accounts.tests.fakes import RecordingConnector
from assets.models import AssetStatus
from assets.selectors import licenses_with_usage
from assets.services import asset_check_in, asset_check_out, asset_reserve
from assets.tests.factories import HardwareAssetFactory, LicenseFactory
from offboarding import engine, selectors
from offboarding.actions import registry
from offboarding.flows.common import end_of_day
from offboarding.flows.joiner import joiner_start
from offboarding.flows.leaver import LEAVER_STEPS, employee_terminate
from offboarding.flows.returns import hardware_return_receive
from offboarding.models import (
    Assignee,
    ChecklistKind,
    ChecklistRun,
    ChecklistTemplate,
    HardwareReturn,
    ReturnStatus,
    RunStatus,
    Task,
    TaskStatus,
)
from offboarding.tests import factories
from offboarding.tests.factories import checklist_build, lifecycle_templates
from portal.models import AuditEvent
from portal.testing.assertions import refused_and_nothing_written
from portal.testing.concurrency import kinds, run_at_once

pytestmark = pytest.mark.django_db


@pytest.fixture
def company(client, recording):
    """Lee (logged in) reports to Morgan; holds two applications, two devices; approves for Rae; owns Wiki."""
    morgan = EmployeeFactory(first_name="Morgan", last_name="Manager", user=UserFactory(username="morgan"))
    lee_user = UserFactory(username="lee")
    lee = EmployeeFactory(
        first_name="Lee",
        last_name="Leaver",
        manager=morgan,
        user=lee_user,
        personal_email="lee@home.example",
    )
    client.force_login(lee_user)  # a live session to end
    chat = ApplicationFactory(name="Chat", connector=RecordingConnector.kind)
    legacy = ApplicationFactory(name="Legacy ERP", connector=ConnectorType.MANUAL)
    license_ = LicenseFactory(application=chat, seats_purchased=10)
    EntitlementFactory(employee=EmployeeFactory(), application=chat)  # a colleague's seat
    chat_access = EntitlementFactory(employee=lee, application=chat, external_id="chat-lee")
    legacy_access = EntitlementFactory(employee=lee, application=legacy)
    wiki = ApplicationFactory(name="Wiki", owner=lee)
    rae = EmployeeFactory(first_name="Rae", last_name="Report", manager=lee)
    request = AccessRequestFactory(employee=rae, application=chat)
    step = ApprovalStep.objects.create(
        request=request, order=1, kind=ApprovalStepKind.MANAGER, approver=lee, status=ApprovalStepStatus.PENDING
    )
    assign_perm(DECIDE_STEP_PERM, lee_user, step)
    assets = [HardwareAssetFactory(asset_tag=f"LEE-{i}") for i in (1, 2)]
    for asset in assets:
        asset_check_out(asset=asset, employee=lee, acting_user=None, terms_accepted=True)
    lifecycle_templates()
    return {
        "lee": lee,
        "morgan": morgan,
        "chat": chat_access,
        "legacy": legacy_access,
        "license": license_,
        "wiki": wiki,
        "step": step,
        "assets": assets,
    }


def sweep_until_quiet(settle, now):
    """Sweep as the periodic scheduler would at `now`, until no more tasks finish (a chain of steps
    due then). The repeating return reminder is left out: it asks to run again two days after the
    real clock, which is before this test's `now`, so each sweep would run it once more."""
    finished = Task.objects.filter(status__in=[TaskStatus.DONE, TaskStatus.SKIPPED]).exclude(
        action="remind_hardware_returns"
    )
    for _ in range(20):
        done = finished.count()
        settle(func=engine.sweep, now=now)
        if finished.count() == done:
            return
    raise AssertionError("the sweeper kept finishing tasks")


def seats_used(license_):
    return licenses_with_usage().get(pk=license_.pk).seats_used


def user_sessions(user):
    return [s for s in Session.objects.all() if s.get_decoded().get("_auth_user_id") == str(user.pk)]


def core(run, key):
    """The run's task for a cut-off step, from the template or added as a core step."""
    return run.tasks.get(key__regex=rf"(^core|^\d+):{key}$")


def test_immediate_termination_cuts_access_in_order(settle, company, it_user, settings):
    lee, morgan = company["lee"], company["morgan"]
    assert user_sessions(lee.user) and seats_used(company["license"]) == 2
    first_event = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first()
    today = timezone.localdate()

    run = settle(
        func=employee_terminate,
        employee=lee,
        last_day=today,
        acting_user=it_user,
        immediate=True,
        reason="Resigned",
    )

    lee.refresh_from_db()
    lee.user.refresh_from_db()
    assert run.kind == ChecklistKind.LEAVE and run.details["reason"] == "Resigned"
    assert lee.end_date == today and lee.status == EmployeeStatus.TERMINATED
    assert not lee.user.is_active and user_sessions(lee.user) == []
    company["chat"].refresh_from_db()
    assert company["chat"].status == EntitlementStatus.REVOKED
    assert seats_used(company["license"]) == 1
    # The manual application is handed to IT; the hand-over, the returns and the purge date do
    # not wait for it (only the archive, which the template puts after the revocations).
    legacy_task = run.tasks.get(key=f"revoke:{company['legacy'].pk}")
    assert legacy_task.status == TaskStatus.PENDING and legacy_task.assignee_type == Assignee.IT
    assert "Remove the account of Lee Leaver" in legacy_task.instructions
    for key in ("hand-over", "hardware-returns", "schedule-purge"):
        assert core(run, key).status == TaskStatus.DONE, key
    assert core(run, "remind-returns").status == TaskStatus.PENDING  # repeats while a device is out
    archive = run.tasks.get(key__endswith=":archive-mailbox")
    assert {t.key for t in archive.depends_on.all()} >= {core(run, "revoke-access").key, legacy_task.key}
    with pytest.raises(ValidationError, match="waits for: .*Revoke Legacy ERP"):
        engine.task_complete(task=archive, acting_user=it_user)
    company["step"].refresh_from_db()
    company["wiki"].refresh_from_db()
    assert company["step"].approver == morgan and company["wiki"].owner == morgan
    assert morgan.user.has_perm(DECIDE_STEP_PERM, company["step"])
    returns = list(HardwareReturn.objects.filter(run=run).order_by("asset__asset_tag"))
    assert [r.asset.asset_tag for r in returns] == ["LEE-1", "LEE-2"]
    assert {r.status for r in returns} == {ReturnStatus.OPEN}
    assert {r.due_date for r in returns} == {today + datetime.timedelta(days=settings.LIFECYCLE["RETURN_DAYS"])}
    for asset in company["assets"]:
        asset.refresh_from_db()
        assert asset.status == AssetStatus.PENDING_RETURN and asset.assigned_to == lee
    (reminder,) = mail.outbox
    assert set(reminder.to) == {"lee@home.example", lee.work_email}
    assert "LEE-1" in reminder.body and "LEE-2" in reminder.body
    # The purge is not a task of the run: its date is recorded, and the daily purge does it.
    purge_due = (today + datetime.timedelta(days=settings.LIFECYCLE["RETENTION_DAYS"] + 1)).isoformat()
    schedule = core(run, "schedule-purge")
    assert schedule.status == TaskStatus.DONE and schedule.result["purge_due"] == purge_due
    assert not run.tasks.filter(action="purge_personal_data").exists()

    run.refresh_from_db()
    assert run.details["purge_due"] == purge_due
    assert run.status == RunStatus.RUNNING  # the hardware is still out

    settle(func=engine.task_complete, task=legacy_task, acting_user=it_user, note="Removed in the ERP.")
    company["legacy"].refresh_from_db()
    assert company["legacy"].status == EntitlementStatus.REVOKED
    run.refresh_from_db()
    assert run.last_revocation_at == company["legacy"].revoked_at
    assert run.time_to_deprovision == run.last_revocation_at - run.effective_at
    settle(func=engine.task_complete, task=archive, acting_user=it_user)

    # Order at the cut-off, read from the audit log: login, then status, then the rest.
    events = list(AuditEvent.objects.filter(pk__gt=first_event).order_by("pk"))

    def first(predicate):
        return next(i for i, e in enumerate(events) if predicate(e))

    def last(predicate):
        return max(i for i, e in enumerate(events) if predicate(e))

    login = first(lambda e: e.action == AuditEvent.Action.LOGIN_DISABLED)
    status = first(lambda e: e.action == AuditEvent.Action.STATUS_CHANGED)
    revokes = last(lambda e: e.action == AuditEvent.Action.REVOKE)
    first_revoke = first(lambda e: e.action == AuditEvent.Action.REVOKE)
    handover = first(lambda e: e.action == AuditEvent.Action.APPROVAL_HANDED_OVER)
    returns_at = first(lambda e: e.action == AuditEvent.Action.ASSET_STATUS and e.detail.get("to") == "pending_return")
    terminate = first(lambda e: e.action == AuditEvent.Action.TERMINATE)
    assert terminate < login < status < min(first_revoke, handover, returns_at)
    assert revokes > handover  # the manual revocation came last, and held up nothing but the archive


def test_future_dated_termination_waits_for_the_cut_off(settle, company, it_user):
    lee = company["lee"]
    last_day = timezone.localdate() + datetime.timedelta(days=5)
    run = settle(func=employee_terminate, employee=lee, last_day=last_day, acting_user=it_user)
    cut_off = end_of_day(last_day)
    assert run.effective_at == cut_off
    # The revocations are planned now, due at the cut-off: the run's task count is known from the start.
    total = selectors.runs_with_progress().get(pk=run.pk).total_tasks
    revocations = run.tasks.filter(action="revoke_entitlement")
    assert {t.params["entitlement"] for t in revocations} == {company["chat"].pk, company["legacy"].pk}
    assert {t.due_at for t in revocations} == {cut_off}
    lee.refresh_from_db()
    lee.user.refresh_from_db()
    assert lee.end_date == last_day and lee.status == EmployeeStatus.ACTIVE and lee.user.is_active
    assert core(run, "disable-login").due_at == cut_off
    assert set(run.tasks.filter(assignee_type=Assignee.SYSTEM).values_list("status", flat=True)) == {TaskStatus.PENDING}

    settle(func=engine.sweep, now=cut_off - datetime.timedelta(hours=1))
    lee.user.refresh_from_db()
    assert lee.user.is_active

    sweep_until_quiet(settle, cut_off + datetime.timedelta(minutes=1))
    lee.refresh_from_db()
    lee.user.refresh_from_db()
    assert not lee.user.is_active and lee.status == EmployeeStatus.TERMINATED
    company["chat"].refresh_from_db()
    assert company["chat"].status == EntitlementStatus.REVOKED
    assert selectors.runs_with_progress().get(pk=run.pk).total_tasks == total


def test_access_granted_between_the_termination_and_the_cut_off_is_revoked_too(settle, company, it_user):
    """The plan made at the start is not the last word: the cut-off adds what was granted since."""
    lee = company["lee"]
    last_day = timezone.localdate() + datetime.timedelta(days=2)
    run = settle(func=employee_terminate, employee=lee, last_day=last_day, acting_user=it_user)
    late = EntitlementFactory(employee=lee, application=ApplicationFactory(name="Late", connector="test-recording"))
    sweep_until_quiet(settle, end_of_day(last_day) + datetime.timedelta(minutes=1))
    late.refresh_from_db()
    assert late.status == EntitlementStatus.REVOKED
    child = run.tasks.get(key=f"revoke:{late.pk}")
    assert child.status == TaskStatus.DONE and child.parent == core(run, "revoke-access")
    assert run.tasks.filter(action="revoke_entitlement").count() == 3


def test_termination_before_the_start_date_is_refused_with_the_reason(company, it_user):
    lee = company["lee"]
    with refused_and_nothing_written(ValidationError, match="before the start date") as exc:
        employee_terminate(employee=lee, last_day=lee.start_date - datetime.timedelta(days=1), acting_user=it_user)
    assert "before the start date" in exc.value.message_dict["last_day"][0]
    lee.refresh_from_db()
    assert lee.end_date is None
    assert not ChecklistRun.objects.filter(employee=lee).exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.TERMINATE).exists()


def test_terminating_twice_gives_one_run_and_a_terminated_person_is_refused(settle, company, it_user):
    lee = company["lee"]
    last_day = timezone.localdate() + datetime.timedelta(days=3)
    run = employee_terminate(employee=lee, last_day=last_day, acting_user=it_user)
    again = employee_terminate(employee=lee, last_day=last_day, acting_user=it_user, immediate=True)
    assert again == run
    assert ChecklistRun.objects.filter(employee=lee, kind=ChecklistKind.LEAVE).count() == 1
    assert AuditEvent.objects.filter(action=AuditEvent.Action.TERMINATE).count() == 1

    other = EmployeeFactory(status=EmployeeStatus.TERMINATED)
    with pytest.raises(ValidationError, match="already terminated"):
        employee_terminate(employee=other, last_day=timezone.localdate(), acting_user=it_user)


def test_every_leaver_action_run_twice_has_its_effect_once(settle, company, it_user):
    lee = company["lee"]
    run = settle(
        func=employee_terminate, employee=lee, last_day=timezone.localdate(), acting_user=it_user, immediate=True
    )
    legacy_task = run.tasks.get(key=f"revoke:{company['legacy'].pk}")
    settle(func=engine.task_complete, task=legacy_task, acting_user=it_user)
    counts = (AuditEvent.objects.count(), HardwareReturn.objects.count(), Task.objects.count(), len(mail.outbox))

    for key in (
        "disable-login",
        "set-terminated",
        "revoke-access",
        "hand-over",
        "hardware-returns",
        "remind-returns",
        "schedule-purge",
    ):
        task = Task.objects.select_related("run__employee").get(pk=core(run, key).pk)
        registry[task.action].func(task)
        registry[task.action].func(task)
    for task in run.tasks.filter(action="revoke_entitlement"):
        registry["revoke_entitlement"].func(task)

    assert (
        AuditEvent.objects.count(),
        HardwareReturn.objects.count(),
        Task.objects.count(),
        len(mail.outbox),
    ) == counts


def test_reminders_repeat_until_everything_is_returned(settle, company, it_user, settings):
    run = settle(
        func=employee_terminate,
        employee=company["lee"],
        last_day=timezone.localdate(),
        acting_user=it_user,
        immediate=True,
    )
    assert len(mail.outbox) == 1
    tasks = run.tasks.count()
    interval = datetime.timedelta(days=settings.LIFECYCLE["REMINDER_INTERVAL_DAYS"])
    reminder = core(run, "remind-returns")
    # One task that runs again: pending, due an interval later, no follow-up task added.
    assert reminder.status == TaskStatus.PENDING and reminder.attempts == 0
    assert reminder.due_at - timezone.now() > interval - datetime.timedelta(minutes=1)
    assert reminder.result["rounds"] == 1 and reminder.result["sent"] is True

    def days_pass():  # the clock moves on by one interval
        for item in HardwareReturn.objects.filter(run=run):
            HardwareReturn.objects.filter(pk=item.pk).update(last_reminded_at=item.last_reminded_at - interval)

    days_pass()
    settle(func=engine.sweep, now=reminder.due_at + datetime.timedelta(minutes=1))
    assert len(mail.outbox) == 2 and "LEE-1" in mail.outbox[1].body
    assert set(HardwareReturn.objects.filter(run=run).values_list("reminders_sent", flat=True)) == {2}
    reminder.refresh_from_db()
    assert reminder.status == TaskStatus.PENDING and reminder.result["rounds"] == 2
    assert run.tasks.count() == tasks

    HardwareReturn.objects.filter(run=run).update(status=ReturnStatus.RECEIVED, received_at=timezone.now())
    days_pass()
    settle(func=engine.sweep, now=reminder.due_at + datetime.timedelta(minutes=1))
    assert len(mail.outbox) == 2
    reminder.refresh_from_db()
    assert reminder.status == TaskStatus.DONE and reminder.result["open"] == 0
    assert run.tasks.count() == tasks


def test_the_run_closes_once_the_hardware_is_back_not_after_the_retention_period(settle, company, it_user):
    lee = company["lee"]
    run = settle(
        func=employee_terminate, employee=lee, last_day=timezone.localdate(), acting_user=it_user, immediate=True
    )
    settle(func=engine.task_complete, task=run.tasks.get(key=f"revoke:{company['legacy'].pk}"), acting_user=it_user)
    first, second = HardwareReturn.objects.filter(run=run).order_by("asset__asset_tag")
    reminder = core(run, "remind-returns")
    due = reminder.due_at

    settle(func=hardware_return_receive, item=first, acting_user=it_user)
    reminder.refresh_from_db()
    assert (reminder.status, reminder.due_at) == (TaskStatus.PENDING, due)  # LEE-2 is still out

    settle(func=hardware_return_receive, item=second, acting_user=it_user, condition="damaged", note="Dent.")

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.condition, first.received_by) == (ReturnStatus.RECEIVED, "good", it_user)
    assert second.status == ReturnStatus.RECEIVED and second.received_at is not None
    laptop_1, laptop_2 = company["assets"]
    laptop_1.refresh_from_db()
    laptop_2.refresh_from_db()
    assert (laptop_1.status, laptop_1.assigned_to) == (AssetStatus.IN_STOCK, None)
    assert (laptop_2.status, laptop_2.assigned_to) == (AssetStatus.IN_REPAIR, None)
    assert not laptop_1.checkouts.filter(checked_in_at__isnull=True).exists()
    assert laptop_2.checkouts.get().condition_on_return == "damaged"
    # The reminder ran at once, found nothing out and finished (no email).
    reminder.refresh_from_db()
    assert reminder.status == TaskStatus.DONE and reminder.result["open"] == 0
    assert len([m for m in mail.outbox if "return your company hardware" in m.subject]) == 1
    received = AuditEvent.objects.filter(action=AuditEvent.Action.RETURN_RECEIVED)
    assert received.count() == 2 and {e.actor for e in received} == {it_user}

    # What is left is the people's work from the template; once done, the run closes today.
    for task in run.tasks.exclude(status__in=[TaskStatus.DONE, TaskStatus.SKIPPED]):
        assert task.assignee_type in (Assignee.IT, Assignee.MANAGER), task.key
        settle(func=engine.task_complete, task=task, acting_user=it_user)
    run.refresh_from_db()
    assert run.status == RunStatus.DONE
    assert run.completed_at - run.effective_at < datetime.timedelta(hours=1)
    assert run.details["purge_due"] > timezone.localdate().isoformat()
    lee.refresh_from_db()
    assert lee.anonymised_at is None  # the daily purge does that, after the retention period


def test_a_return_received_twice_is_refused_and_one_checked_in_already_is_kept(settle, company, it_user):
    run = settle(
        func=employee_terminate,
        employee=company["lee"],
        last_day=timezone.localdate(),
        acting_user=it_user,
        immediate=True,
    )
    settle(func=engine.task_complete, task=run.tasks.get(key=f"revoke:{company['legacy'].pk}"), acting_user=it_user)
    first, second = HardwareReturn.objects.filter(run=run).order_by("asset__asset_tag")
    hardware_return_receive(item=first, acting_user=it_user)
    with pytest.raises(ValidationError, match="LEE-1 was received already; only an open or shipped"):
        hardware_return_receive(item=first, acting_user=it_user)
    with pytest.raises(ValidationError, match="Unknown condition"):
        hardware_return_receive(item=second, acting_user=it_user, condition="soggy")

    # IT checked LEE-2 in from the hardware admin first; receiving the return leaves the asset alone.
    asset_check_in(asset=company["assets"][1], acting_user=it_user)
    check_ins = AuditEvent.objects.filter(action=AuditEvent.Action.CHECK_IN).count()
    hardware_return_receive(item=second, acting_user=it_user)
    second.refresh_from_db()
    assert second.status == ReturnStatus.RECEIVED
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CHECK_IN).count() == check_ins
    received = AuditEvent.objects.get(action=AuditEvent.Action.RETURN_RECEIVED, target_id=str(second.pk))
    assert received.detail["checked_in"] is False


def test_a_leavers_reserved_kit_goes_back_to_stock_through_the_asset_service(settle, it_user):
    joiner = EmployeeFactory(
        status=EmployeeStatus.PRE_HIRE, start_date=timezone.localdate() + datetime.timedelta(days=20)
    )
    kept = HardwareAssetFactory(asset_tag="KIT-1")
    asset_reserve(asset=kept, employee=joiner, acting_user=it_user)
    run = settle(
        func=employee_terminate,
        employee=joiner,
        last_day=joiner.start_date,
        acting_user=it_user,
        immediate=True,
        reason="Offer withdrawn",
    )
    kept.refresh_from_db()
    assert kept.reserved_for is None and kept.status == AssetStatus.IN_STOCK
    assert core(run, "hardware-returns").result["released"] == ["KIT-1"]
    event = AuditEvent.objects.get(action=AuditEvent.Action.ASSET_RESERVATION_RELEASED)
    assert event.detail == {"employee": joiner.pk, "run": run.pk}
    assert event.actor is None  # the system, at the cut-off


def test_core_cut_off_steps_are_added_when_no_template_applies(settle, company, it_user):
    ChecklistTemplate.objects.all().delete()
    lee = company["lee"]
    run = settle(
        func=employee_terminate, employee=lee, last_day=timezone.localdate(), acting_user=it_user, immediate=True
    )
    needs = {task.key: {dep.key for dep in task.depends_on.all()} for task in run.tasks.filter(key__startswith="core:")}
    assert needs == {
        "core:disable-login": set(),
        "core:set-terminated": {"core:disable-login"},
        "core:revoke-access": {"core:set-terminated"},
        "core:hand-over": {"core:set-terminated"},
        "core:hardware-returns": {"core:set-terminated"},
        "core:remind-returns": {"core:hardware-returns"},
        "core:schedule-purge": {"core:set-terminated"},
    }
    assert {step.key for step in LEAVER_STEPS} == {key.removeprefix("core:") for key in needs}
    for child in run.tasks.filter(action="revoke_entitlement"):
        # What revoke-access waits for, not revoke-access itself: revocations start once the status is set.
        assert {dep.key for dep in child.depends_on.all()} == {"core:set-terminated"}
    lee.refresh_from_db()
    assert lee.status == EmployeeStatus.TERMINATED
    company["chat"].refresh_from_db()
    assert company["chat"].status == EntitlementStatus.REVOKED
    # The hand-over did not wait for the manual revocation still with IT.
    assert run.tasks.get(key=f"revoke:{company['legacy'].pk}").status == TaskStatus.PENDING
    assert run.tasks.get(key="core:hand-over").status == TaskStatus.DONE


def test_a_template_cannot_run_a_step_before_the_login_is_disabled(settle, company, it_user):
    """A template that forgot the order (every step on its own) still gets login → status → the rest."""
    ChecklistTemplate.objects.all().delete()
    template = checklist_build(
        "Leaver — careless",
        ChecklistKind.LEAVE,
        # Last step first: queued in that order, they would run in that order if nothing held them back.
        [{k: v for k, v in step.items() if k != "after"} for step in reversed(factories.LEAVER_STEPS[:7])],
    )
    first_event = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first()
    run = settle(
        func=employee_terminate,
        employee=company["lee"],
        last_day=timezone.localdate(),
        acting_user=it_user,
        immediate=True,
    )
    handover = run.tasks.get(key=f"{template.pk}:hand-over")
    assert {dep.key for dep in handover.depends_on.all()} == {f"{template.pk}:set-terminated"}
    assert handover.status == TaskStatus.DONE
    events = list(AuditEvent.objects.filter(pk__gt=first_event).order_by("pk").values_list("action", flat=True))
    login = events.index(AuditEvent.Action.LOGIN_DISABLED)
    assert login < events.index(AuditEvent.Action.STATUS_CHANGED) < events.index(AuditEvent.Action.APPROVAL_HANDED_OVER)
    assert login < events.index(AuditEvent.Action.REVOKE)


def test_cut_off_stops_an_open_join_run(settle, it_user):
    joiner = EmployeeFactory(
        status=EmployeeStatus.PRE_HIRE, start_date=timezone.localdate() + datetime.timedelta(days=20)
    )
    lifecycle_templates()
    join = settle(func=joiner_start, employee=joiner, acting_user=it_user)
    assert join.tasks.filter(status=TaskStatus.PENDING).exists()
    settle(
        func=employee_terminate,
        employee=joiner,
        last_day=joiner.start_date,
        acting_user=it_user,
        immediate=True,
        reason="Offer withdrawn",
    )
    join.refresh_from_db()
    assert not join.tasks.filter(status__in=[TaskStatus.PENDING, TaskStatus.FAILED]).exists()
    assert join.status == RunStatus.CANCELLED


def test_leaver_without_a_manager_hands_approvals_to_it(settle, it_user):
    lee = EmployeeFactory()
    ApplicationFactory(name="Orphan", owner=lee)
    run = settle(
        func=employee_terminate, employee=lee, last_day=timezone.localdate(), acting_user=it_user, immediate=True
    )
    handover = run.tasks.get(action="hand_over_approvals")
    assert handover.status == TaskStatus.PENDING and handover.assignee_type == Assignee.IT
    assert "has no manager" in handover.instructions and "Orphan" in handover.instructions


@pytest.mark.django_db(transaction=True)
def test_concurrent_terminations_make_one_run(recording):
    if connection.vendor == "sqlite":
        pytest.skip("SQLite serialises write transactions and has no row locks; the race needs PostgreSQL.")
    lee = EmployeeFactory()
    EntitlementFactory(employee=lee, application=ApplicationFactory(connector=RecordingConnector.kind))

    def terminate(immediate):
        return employee_terminate(employee=lee, last_day=timezone.localdate(), acting_user=None, immediate=immediate).pk

    outcomes = run_at_once(lambda: terminate(True), lambda: terminate(False), timeout=60)
    assert kinds(outcomes) == ["ok", "ok"], outcomes
    assert len({run_id for _, run_id in outcomes}) == 1
    assert ChecklistRun.objects.filter(employee=lee, kind=ChecklistKind.LEAVE).count() == 1
    assert AuditEvent.objects.filter(action=AuditEvent.Action.TERMINATE, target_id=str(lee.pk)).count() == 1


def test_a_revocation_that_fails_for_good_stalls_nothing_else(settle, company, it_user, ldap_directory, settings):
    """The demo's stall: an immediate termination where one LDAP revocation fails for good (the
    directory refuses Portal's bind) and ten manual revocations wait for IT. Returns, hand-over and
    the purge date are done at once all the same; IT is told of the failure once; the run says what
    blocks it; nothing is created overdue; the progress denominator never moves."""
    settings.IT_TEAM_EMAIL = "it-team@example.com"
    lee, morgan = company["lee"], company["morgan"]
    directory = ApplicationFactory(
        name="Corporate Directory",
        connector=ConnectorType.LDAP,
        connector_config=ldap_directory.connector_config(bind_password="not-the-password"),
    )
    ldap_access = EntitlementFactory(
        employee=lee, application=directory, external_id="uid=lee,ou=people,dc=example,dc=com"
    )
    manual = [company["legacy"]] + [
        EntitlementFactory(employee=lee, application=ApplicationFactory(name=f"Manual {i}", connector="manual"))
        for i in range(9)
    ]
    before = timezone.now()

    run = settle(
        func=employee_terminate,
        employee=lee,
        last_day=timezone.localdate(),
        acting_user=it_user,
        immediate=True,
        reason="Dismissed",
    )

    def progress():
        row = selectors.runs_with_progress().get(pk=run.pk)
        return row.finished_tasks, row.total_tasks

    # Login first, and everything that needs only the cut-off is done, whatever the revocations do.
    lee.refresh_from_db()
    lee.user.refresh_from_db()
    assert not lee.user.is_active and lee.status == EmployeeStatus.TERMINATED
    for key in ("disable-login", "set-terminated", "hand-over", "hardware-returns", "schedule-purge"):
        assert core(run, key).status == TaskStatus.DONE, key
    company["step"].refresh_from_db()
    company["wiki"].refresh_from_db()
    assert company["step"].approver == morgan and company["wiki"].owner == morgan
    assert HardwareReturn.objects.filter(run=run, status=ReturnStatus.OPEN).count() == 2
    run.refresh_from_db()
    assert run.details["purge_due"]
    # ... while the revocations are still open: ten with IT, one failed.
    revocations = {t.params["entitlement"]: t for t in run.tasks.filter(action="revoke_entitlement")}
    assert len(revocations) == 12
    for entitlement in manual:
        task = revocations[entitlement.pk]
        assert (task.status, task.assignee_type) == (TaskStatus.PENDING, Assignee.IT)
    failed = revocations[ldap_access.pk]
    assert failed.status == TaskStatus.FAILED and "invalidCredentials" in failed.last_error
    assert revocations[company["chat"].pk].status == TaskStatus.DONE
    ldap_access.refresh_from_db()
    assert ldap_access.status != EntitlementStatus.REVOKED

    # IT is told once, by email, and the run says what blocks it.
    (alert,) = [m for m in mail.outbox if m.to == ["it-team@example.com"]]
    assert "Revoke Corporate Directory" in alert.subject and "Lee Leaver" in alert.subject
    assert "invalidCredentials" in alert.body and f"/admin/offboarding/task/{failed.pk}/change/" in alert.body
    failed.refresh_from_db()
    assert failed.failure_alerted_at is not None
    blocked = selectors.run_blocked_by(selectors.runs_with_progress().get(pk=run.pk))
    assert blocked.startswith("blocked by Revoke Corporate Directory (user): ConnectorError: LDAP bind to ldap://")
    assert blocked.endswith("failed: invalidCredentials")
    # No task was created overdue: the manager's notes (template: 3 days before the cut-off) get a day.
    assert [task.key for task in run.tasks.all() if task.due_at < before] == []
    notes = run.tasks.get(key__endswith=":manager-handover")
    assert notes.due_at - before >= engine.runs.LATE_TASK_GRACE
    # (A revocation handed to IT stays due at the cut-off: access held after it is overdue.)
    people_tasks = run.tasks.filter(template__isnull=False).exclude(template__assignee=Assignee.SYSTEM)
    assert people_tasks.count() == 2 and not people_tasks.filter(pk__in=selectors.tasks_overdue()).exists()

    # The denominator is fixed from the start: IT finishes the manual revocations and skips the
    # failed one, the hardware comes back, the people's tasks are done; total never moves.
    done, total = progress()
    assert total == run.tasks.count() and done < total
    for entitlement in manual:
        settle(func=engine.task_complete, task=revocations[entitlement.pk], acting_user=it_user, note="Removed.")
        assert progress()[1] == total
    settle(func=engine.task_skip, task=failed, acting_user=it_user, reason="Removed by hand in the directory.")
    for item in HardwareReturn.objects.filter(run=run):
        settle(func=hardware_return_receive, item=item, acting_user=it_user)
    for task in run.tasks.exclude(status__in=[TaskStatus.DONE, TaskStatus.SKIPPED]):
        settle(func=engine.task_complete, task=task, acting_user=it_user)
    run.refresh_from_db()
    assert run.status == RunStatus.DONE
    assert progress() == (total, total)
    assert len([m for m in mail.outbox if m.to == ["it-team@example.com"]]) == 1


def test_a_termination_takes_the_same_queries_whatever_the_access_held(django_capture_on_commit_callbacks):
    """A layoff terminates hundreds at once: each termination's queries are pinned, and do not grow
    with the entitlements held (the revocations are planned in one insert). The core steps are
    added in one insert, without reading back the tasks of the run just started, and only the end
    date is validated (39 queries, one of them the event hooks' look for subscribers of `employee.left`,
    4 the audit chain's: each of the two audit appends locks the chain head (SQLite: reads the last
    event) and writes the event's personal values beside it; 73 in four batches, 100 when the steps
    were added one by one)."""
    from django.test.utils import CaptureQueriesContext

    from accounts.tests.factories import ApplicationFactory, EntitlementFactory

    ChecklistTemplate.objects.all().delete()
    apps = [ApplicationFactory(connector="manual") for _ in range(8)]
    counts = []
    for held in (1, 8):
        employee = EmployeeFactory()
        for app in apps[:held]:
            EntitlementFactory(employee=employee, application=app, status=EntitlementStatus.ACTIVE)
        with django_capture_on_commit_callbacks(execute=False), CaptureQueriesContext(connection) as queries:
            run = employee_terminate(employee=employee, last_day=timezone.localdate(), acting_user=None, immediate=True)
        assert run.tasks.filter(action="revoke_entitlement").count() == held
        counts.append(len(queries))
    assert counts == [39, 39], counts


@pytest.mark.parametrize("connector", [ConnectorType.WEBHOOK, ConnectorType.LDAP])
def test_a_revocation_takes_seventeen_queries_claim_to_outcome(connector, request, django_capture_on_commit_callbacks):
    """A layoff is ten of these per leaver, so each is pinned: the claim; the entitlement read once
    (with its person and application); `revoking` (a conditional UPDATE ... RETURNING and its history
    row) committed before the connector is called; after the call, in one transaction, `revoked`
    (UPDATE ... RETURNING, history row, audit event, the event hooks' look for subscribers); the run's
    time to deprovision (one UPDATE); the outcome and the run's next step. The connector's calls are
    the peer's, not queries. (15 before the audit chain's two; 23 before: the entitlement read twice,
    each status change a locked read then a save in a savepoint of its own, the run read to record
    the revocation.)"""
    from accounts.services.provisioning import entitlement_plan, entitlement_provision

    ChecklistTemplate.objects.all().delete()
    peer = request.getfixturevalue("webhook_server" if connector == ConnectorType.WEBHOOK else "ldap_directory")
    app = ApplicationFactory(connector=connector, connector_config=peer.connector_config())
    employee = EmployeeFactory()
    entitlement = entitlement_plan(employee=employee, application=app, level=app.access_levels[0])
    entitlement_provision(entitlement=entitlement, idempotency_key="provision")  # the account is on the peer
    with django_capture_on_commit_callbacks(execute=False):
        run = employee_terminate(employee=employee, last_day=timezone.localdate(), acting_user=None, immediate=True)
        while not run.tasks.filter(action="revoke_entitlement", status=TaskStatus.QUEUED).exists():
            # The cut-off's steps before it (login disabled first), as the queue would run them.
            step = run.tasks.filter(status=TaskStatus.QUEUED).exclude(action="revoke_entitlement").earliest("pk")
            assert engine.task_execute(task_id=step.pk) == "done"
    revocation = run.tasks.get(action="revoke_entitlement")
    history_before = entitlement.history.count()
    with django_capture_on_commit_callbacks(execute=False), CaptureQueriesContext(connection) as queries:
        assert engine.task_execute(task_id=revocation.pk) == "done"
    # claim; entitlement SELECT; revoking UPDATE, history INSERT (this test's transaction: no savepoint);
    # SAVEPOINT, revoked UPDATE, history INSERT, audit chain head lock, audit INSERT, audit personal
    # values INSERT, subscribers SELECT, RELEASE; run UPDATE; SAVEPOINT, outcome UPDATE, unfinished
    # tasks SELECT, RELEASE (15 before the hash-chained audit log)
    assert len(queries) == 17, "\n".join(q["sql"][:160] for q in queries.captured_queries)

    entitlement.refresh_from_db()
    run.refresh_from_db()
    assert entitlement.status == EntitlementStatus.REVOKED
    rows = list(entitlement.history.order_by("history_id"))[history_before:]
    assert [(row.status, row.history_type, row.revoked_at) for row in rows] == [
        (EntitlementStatus.REVOKING, "~", None),
        (EntitlementStatus.REVOKED, "~", entitlement.revoked_at),
    ]
    audit = AuditEvent.objects.get(action=AuditEvent.Action.REVOKE, target_id=str(entitlement.pk))
    assert audit.detail["via"] == connector and audit.target_repr == str(entitlement)
    assert run.last_revocation_at == entitlement.revoked_at
    assert run.time_to_deprovision == entitlement.revoked_at - run.effective_at
    if connector == ConnectorType.WEBHOOK:
        assert [effect["event"] for effect in peer.effects] == ["provision", "revoke"]
    else:
        assert peer.members(app.connector_config["groups"]["user"]) == set()


def test_the_leaver_runs_revocation_reads_in_the_audit_log_with_its_run(settle, company, it_user):
    """The audit event of a revocation the run made names the run ("— leaver run #41")."""
    from portal.auditsentences import describe, sentence_text

    run = settle(
        func=employee_terminate,
        employee=company["lee"],
        last_day=timezone.localdate(),
        acting_user=it_user,
        immediate=True,
        reason="Resigned",
    )
    event = AuditEvent.objects.get(action=AuditEvent.Action.REVOKE, target_id=str(company["chat"].pk))
    assert event.detail["run"] == run.pk
    text = sentence_text(describe([event])[event.pk])
    assert text.startswith("System revoked Chat from Lee Leaver")
    assert text.endswith(f"— leaver run #{run.pk}")
