"""Separation of duties in the lifecycle: the mover preview names the conflicts a move would create, and
the engine never grants (nor raises the level of) access that would create a conflict without an
exception: the task is blocked, with the rule named, visible on the run, until IT acts.

The accounts side (rules, requests, exceptions, the report) is `accounts/tests/test_sod.py`.
"""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from accounts.models import EntitlementSource, EntitlementStatus, RoleApplication, SoDEnforcement, SoDException, SoDRule
from accounts.services import provisioning, sod
from accounts.tests.factories import ApplicationFactory, EmployeeFactory, EntitlementFactory, RoleFactory, UserFactory
from accounts.tests.fakes import RecordingConnector
from offboarding.engine.manual import task_retry
from offboarding.flows.mover import mover_apply, mover_preview
from offboarding.models import TaskStatus
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _recording(recording):
    return recording


@pytest.fixture
def world():
    """Ana is a payments clerk (birthright: the bank portal as submitter) moving to payments approver
    (birthright: ERP payments as approver). One rule keeps submitting and approving apart."""
    bank = ApplicationFactory(
        name="Bank portal", access_levels=["submitter", "viewer"], connector=RecordingConnector.kind
    )
    erp = ApplicationFactory(
        name="ERP payments", access_levels=["viewer", "approver"], connector=RecordingConnector.kind
    )
    clerk = RoleFactory(name="Payments clerk", code="clerk")
    approver = RoleFactory(name="Payments approver", code="approver")
    RoleApplication.objects.create(role=clerk, application=bank, access_level="submitter")
    RoleApplication.objects.create(role=approver, application=erp, access_level="approver")
    owner = EmployeeFactory(first_name="Carla", last_name="Controller", user=UserFactory(username="carla"))
    rule = sod.sod_rule_save(
        rule=SoDRule(
            name="Payments: submit vs approve",
            reason="Whoever submits a payment must not approve it.",
            first_application=bank,
            first_level="submitter",
            second_application=erp,
            second_level="approver",
            enforcement=SoDEnforcement.APPROVAL,
            control_owner=owner,
        ),
        acting_user=None,
    )
    ana = EmployeeFactory(first_name="Ana", last_name="Clerk", role=clerk)
    bank_access = EntitlementFactory(
        employee=ana, application=bank, level="submitter", source=EntitlementSource.BIRTHRIGHT
    )
    return {
        "ana": ana,
        "bank": bank,
        "erp": erp,
        "clerk": clerk,
        "approver": approver,
        "rule": rule,
        "owner": owner,
        "bank_access": bank_access,
    }


def test_the_preview_names_a_conflict_held_only_during_the_grace_period(world):
    preview = mover_preview(employee=world["ana"], role=world["approver"])
    assert [line.application.name for line in preview.revoke] == ["Bank portal"]
    assert [(c.conflict.rule, c.lasting, c.conflict.excepted) for c in preview.conflicts] == [
        (world["rule"], False, False)
    ]


def test_the_preview_names_a_lasting_conflict_and_an_exception_in_force(world):
    world["bank_access"].source = EntitlementSource.REQUEST  # kept after the move: justified by a request
    world["bank_access"].save()
    preview = mover_preview(employee=world["ana"], role=world["approver"])
    assert [(c.conflict.rule, c.lasting) for c in preview.conflicts] == [(world["rule"], True)]
    SoDException.objects.create(
        rule=world["rule"],
        employee=world["ana"],
        starts_on=timezone.localdate(),
        ends_on=timezone.localdate() + datetime.timedelta(days=3),
        reason="Handover week.",
        approved_by=world["owner"],
    )
    preview = mover_preview(employee=world["ana"], role=world["approver"])
    assert [c.conflict.excepted for c in preview.conflicts] == [True]


def test_a_move_that_creates_no_conflict_shows_none(world):
    world["rule"].second_level = "viewer"
    sod.sod_rule_save(rule=world["rule"], acting_user=None)
    assert mover_preview(employee=world["ana"], role=world["approver"]).conflicts == []


def test_the_admin_preview_page_shows_the_conflict(client, it_admin, world):
    from offboarding.tests.test_employee_admin import change_url, form_data

    client.force_login(it_admin)
    ana = world["ana"]
    data = form_data(client.get(change_url(ana)), role=world["approver"].pk)
    html = client.post(change_url(ana), data).content.decode()
    assert "Separation of duties (1 conflict the move would create)" in html
    assert "Bank portal (submitter) with ERP payments (approver)" in html
    assert "during the grace period only" in html and "Carla Controller" in html


def test_the_engine_blocks_a_grant_that_creates_a_conflict_and_grants_it_once_excepted(settle, world):
    it_user = UserFactory(username="it")
    ana = world["ana"]
    run = settle(func=mover_apply, employee=ana, changes={"role": world["approver"]}, acting_user=it_user)
    erp_access = ana.entitlements.get(application=world["erp"])
    task = run.tasks.get(action="provision_entitlement", params__entitlement=erp_access.pk)
    assert task.status == TaskStatus.FAILED
    assert "separation-of-duties conflict" in task.last_error
    assert "Payments: submit vs approve" in task.last_error and "not retried" in task.last_error
    erp_access.refresh_from_db()
    assert erp_access.status == EntitlementStatus.PENDING
    assert RecordingConnector.operations("provision") == []  # the target system was never asked
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SOD_GRANT_BLOCKED, target_id=str(erp_access.pk))
    assert AuditEvent.objects.filter(action=AuditEvent.Action.TASK_FAILED, target_id=str(task.pk))

    # The blocked grant is pending, so it counts as held: IT excepts the conflict it creates.
    sod.sod_exception_grant(
        exception=SoDException(
            rule=world["rule"],
            employee=ana,
            starts_on=timezone.localdate(),
            ends_on=timezone.localdate() + datetime.timedelta(days=14),
            reason="Handover: both until the clerk access goes.",
            approved_by=world["owner"],
        ),
        acting_user=it_user,
    )
    settle(func=task_retry, task=task, acting_user=it_user, reason="Exception granted.")
    task.refresh_from_db()
    erp_access.refresh_from_db()
    assert task.status == TaskStatus.DONE and erp_access.status == EntitlementStatus.ACTIVE


def test_the_run_page_shows_the_blocked_task_with_the_rule(client, it_admin, settle, world):
    run = settle(func=mover_apply, employee=world["ana"], changes={"role": world["approver"]}, acting_user=None)
    client.force_login(it_admin)
    html = client.get(reverse("admin:offboarding_checklistrun_change", args=[run.pk])).content.decode()
    assert "separation-of-duties conflict" in html and "Payments: submit vs approve" in html


def test_a_level_change_that_creates_a_conflict_is_refused(world):
    ana = world["ana"]
    erp_access = EntitlementFactory(employee=ana, application=world["erp"], level="viewer")
    with pytest.raises(ValidationError, match="separation-of-duties conflict"):
        provisioning.entitlement_change_level(entitlement=erp_access, level="approver", idempotency_key="t-1")
    erp_access.refresh_from_db()
    assert erp_access.level == "viewer" and RecordingConnector.operations("change_level") == []
