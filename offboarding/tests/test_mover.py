"""Mover: the preview (add / revoke / keep with reasons) and applying it (additions now,
revocations after the grace period, re-checked when they run)."""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.models import AccessRequestStatus, EntitlementSource, EntitlementStatus, RoleApplication
from accounts.tests.factories import (
    AccessRequestFactory,
    ApplicationFactory,
    DepartmentFactory,
    EmployeeFactory,
    EntitlementFactory,
    RoleFactory,
    UserFactory,
)
from accounts.tests.fakes import RecordingConnector
from offboarding import engine
from offboarding.actions import registry
from offboarding.flows.mover import mover_apply, mover_preview
from offboarding.models import ChecklistKind, ChecklistRun, TaskStatus
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _recording(recording):
    """The mover's applications use the recording connector; each test starts with no call recorded."""
    return recording


def calls() -> list[tuple[str, str]]:
    """The connector calls so far, as (operation, idempotency key)."""
    return [(call.operation, call.idempotency_key) for call in RecordingConnector.calls]


def app(name):
    return ApplicationFactory(name=name, connector=RecordingConnector.kind)


@pytest.fixture
def world():
    """Ana is an analyst (birthrights: BI, Wiki, CRM) moving to engineer (Wiki at admin, Git, CI)."""
    bi, wiki, crm, git, ci, vpn, payroll = (app(n) for n in ("BI", "Wiki", "CRM", "Git", "CI", "VPN", "Payroll"))
    analyst = RoleFactory(name="Analyst", code="analyst")
    engineer = RoleFactory(name="Engineer", code="engineer")
    for role, grants in (
        (analyst, [(bi, "user"), (wiki, "user"), (crm, "user")]),
        (engineer, [(wiki, "admin"), (git, "user"), (ci, "user")]),
    ):
        for application, level in grants:
            RoleApplication.objects.create(role=role, application=application, access_level=level)
    ana = EmployeeFactory(first_name="Ana", last_name="Analyst", role=analyst)
    birthright = EntitlementSource.BIRTHRIGHT
    ents = {
        "BI": EntitlementFactory(employee=ana, application=bi, source=birthright, external_id="bi-1"),
        "Wiki": EntitlementFactory(employee=ana, application=wiki, source=birthright),
        "CRM": EntitlementFactory(employee=ana, application=crm, source=birthright),
        "VPN": EntitlementFactory(employee=ana, application=vpn, source=EntitlementSource.MANUAL),
        "Payroll": EntitlementFactory(employee=ana, application=payroll, source=EntitlementSource.REQUEST),
    }
    # An approved request still justifies CRM, although it came as a birthright.
    request = AccessRequestFactory(
        employee=ana, application=crm, status=AccessRequestStatus.APPROVED, entitlement=ents["CRM"]
    )
    return {
        "ana": ana,
        "analyst": analyst,
        "engineer": engineer,
        "ents": ents,
        "request": request,
        "git": git,
        "ci": ci,
    }


def names(lines):
    return [line.application.name for line in lines]


def test_preview_lists_add_revoke_and_keep_with_reasons(world):
    preview = mover_preview(employee=world["ana"], role=world["engineer"])
    assert names(preview.add) == ["CI", "Git"]
    assert names(preview.revoke) == ["BI"]
    assert "birthright of Analyst, not of Engineer" in preview.revoke[0].reason
    keep = {line.application.name: line for line in preview.keep}
    assert set(keep) == {"CRM", "Payroll", "VPN", "Wiki"}
    assert keep["CRM"].reason == f"approved access request #{world['request'].pk}"
    assert keep["Wiki"].reason.startswith("birthright of Engineer") and keep["Wiki"].new_level == "admin"
    assert "by hand" in keep["VPN"].reason
    assert "access request" in keep["Payroll"].reason
    assert preview.changes == {"role": (world["analyst"], world["engineer"])}


def test_preview_writes_nothing_and_a_department_change_keeps_all(world):
    new_department = DepartmentFactory(name="Data")
    preview = mover_preview(employee=world["ana"], department=new_department)
    assert preview.add == [] and preview.revoke == []
    assert len(preview.keep) == 5
    world["ana"].refresh_from_db()
    assert world["ana"].department != new_department


def test_request_expired_no_longer_justifies(world):
    world["request"].end_date = timezone.localdate() - datetime.timedelta(days=1)
    world["request"].save()
    preview = mover_preview(employee=world["ana"], role=world["engineer"])
    assert names(preview.revoke) == ["BI", "CRM"]


def test_apply_adds_now_and_revokes_only_after_the_grace_period(settle, world, settings):
    it_user = UserFactory(username="it")
    ana = world["ana"]
    run = settle(func=mover_apply, employee=ana, changes={"role": world["engineer"]}, acting_user=it_user)
    assert run.kind == ChecklistKind.MOVE

    ana.refresh_from_db()
    assert ana.role == world["engineer"]
    assert ana.history.first().history_user == it_user
    live = {e.application.name: e for e in ana.entitlements.filter(status=EntitlementStatus.ACTIVE)}
    assert {"Git", "CI"} <= set(live)  # provisioned at once through the connector
    assert live["Git"].source == EntitlementSource.BIRTHRIGHT
    assert live["Wiki"].level == "admin"
    assert live["BI"].status == EntitlementStatus.ACTIVE  # grace period

    revoke = run.tasks.get(key=f"revoke:{world['ents']['BI'].pk}")
    grace = datetime.timedelta(days=settings.LIFECYCLE["MOVER_GRACE_DAYS"])
    assert revoke.due_at == run.effective_at + grace
    settle(func=engine.sweep, now=run.effective_at + grace - datetime.timedelta(hours=1))
    world["ents"]["BI"].refresh_from_db()
    assert world["ents"]["BI"].status == EntitlementStatus.ACTIVE

    settle(func=engine.sweep, now=run.effective_at + grace + datetime.timedelta(minutes=1))
    world["ents"]["BI"].refresh_from_db()
    assert world["ents"]["BI"].status == EntitlementStatus.REVOKED
    assert ("revoke", str(revoke.pk)) in calls()
    for name in ("CRM", "VPN", "Payroll"):
        world["ents"][name].refresh_from_db()
        assert world["ents"][name].status == EntitlementStatus.ACTIVE
    run.refresh_from_db()
    assert run.details["moves"][0]["changes"]["role"][1]["id"] == world["engineer"].pk
    assert AuditEvent.objects.filter(action=AuditEvent.Action.EMPLOYEE_MOVED, target_id=str(ana.pk)).exists()


def test_revocation_rechecks_and_keeps_access_justified_meanwhile(settle, world, settings):
    ana = world["ana"]
    run = settle(func=mover_apply, employee=ana, changes={"role": world["engineer"]}, acting_user=None)
    AccessRequestFactory(employee=ana, application=world["ents"]["BI"].application, status=AccessRequestStatus.APPROVED)
    grace = datetime.timedelta(days=settings.LIFECYCLE["MOVER_GRACE_DAYS"], minutes=1)
    settle(func=engine.sweep, now=run.effective_at + grace)
    revoke = run.tasks.get(key=f"revoke:{world['ents']['BI'].pk}")
    assert revoke.status == TaskStatus.DONE and "approved access request" in revoke.result["kept"]
    world["ents"]["BI"].refresh_from_db()
    assert world["ents"]["BI"].status == EntitlementStatus.ACTIVE


def test_moving_back_within_the_grace_period_keeps_the_old_access(settle, world, settings):
    ana = world["ana"]
    run = settle(func=mover_apply, employee=ana, changes={"role": world["engineer"]}, acting_user=None)
    again = settle(func=mover_apply, employee=ana, changes={"role": world["analyst"]}, acting_user=None)
    assert again == run  # one open move run; the second move adds its tasks to it
    assert len(ChecklistRun.objects.get(pk=run.pk).details["moves"]) == 2
    settle(func=engine.sweep, now=timezone.now() + datetime.timedelta(days=settings.LIFECYCLE["MOVER_GRACE_DAYS"] + 1))
    world["ents"]["BI"].refresh_from_db()
    assert world["ents"]["BI"].status == EntitlementStatus.ACTIVE


def test_apply_refuses_no_change_unknown_fields_and_terminated(world):
    ana = world["ana"]
    with pytest.raises(ValidationError, match="Nothing changes"):
        mover_apply(employee=ana, changes={"role": world["analyst"]}, acting_user=None)
    with pytest.raises(ValidationError, match="title"):
        mover_apply(employee=ana, changes={"title": "Boss"}, acting_user=None)
    ana.status = "terminated"
    ana.save()
    with pytest.raises(ValidationError, match="terminated"):
        mover_apply(employee=ana, changes={"role": world["engineer"]}, acting_user=None)


def test_manager_cycle_is_refused(world):
    ana = world["ana"]
    report = EmployeeFactory(manager=ana)
    with pytest.raises(ValidationError):
        mover_apply(employee=ana, changes={"manager": report}, acting_user=None)
    ana.refresh_from_db()
    assert ana.manager is None


def test_mover_actions_run_twice_have_their_effect_once(settle, world):
    run = settle(func=mover_apply, employee=world["ana"], changes={"role": world["engineer"]}, acting_user=None)
    before = calls()
    for task in run.tasks.filter(action__in=["provision_entitlement", "change_entitlement_level"]):
        registry[task.action].func(task)
        registry[task.action].func(task)
    revoke = run.tasks.get(key=f"revoke:{world['ents']['BI'].pk}")
    registry["revoke_entitlement"].func(revoke)
    registry["revoke_entitlement"].func(revoke)
    assert calls() == [*before, ("revoke", str(revoke.pk))]
    assert (
        AuditEvent.objects.filter(action=AuditEvent.Action.REVOKE, target_id=str(world["ents"]["BI"].pk)).count() == 1
    )
