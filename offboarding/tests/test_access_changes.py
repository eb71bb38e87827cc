"""Access requests carried through the lifecycle: an approval is provisioned by the engine (through the
`access_request_approved` hook offboarding fills), time-bound access expires, and a leaver's or mover's
requests follow them. The accounts side alone is tested in `accounts/tests/test_access_requests.py`.

Uses the `cast` fixture (root conftest).
"""

import datetime

import pytest
from django.utils import timezone

from accounts import access
from accounts.models import (
    AccessRequestStatus,
    ApprovalStepStatus,
    ApprovalStepUserObjectPermission,
    Entitlement,
    EntitlementStatus,
)
from accounts.services.approval_steps import approval_step_decide
from accounts.services.notices import entitlements_notify_expiry
from accounts.tests.factories import EntitlementFactory
from accounts.tests.helpers import ask, perms_on
from offboarding.flows.access_changes import access_expire_due, access_request_fulfil
from offboarding.flows.leaver import employee_terminate
from offboarding.flows.mover import mover_apply
from offboarding.models import ChecklistKind, Task
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_no_approval_policy_is_approved_and_provisioned_at_once(cast, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        request = ask(cast, cast.free_app)
    request.refresh_from_db()
    assert request.status == AccessRequestStatus.APPROVED
    assert not request.steps.exists()
    # Manual connector: the engine hands the provisioning to IT as a task of an access-change run.
    task = Task.objects.get(key=f"request:{request.pk}")
    assert task.run.kind == ChecklistKind.ACCESS
    assert request.entitlement.status == EntitlementStatus.PENDING


def test_the_chain_runs_manager_then_owner_then_provisions_through_the_connector(
    cast, webhook_server, django_capture_on_commit_callbacks, mailoutbox
):
    cast.app.connector = "webhook"
    cast.app.connector_config = webhook_server.connector_config()
    cast.app.save()
    request = ask(cast, level="write")
    first, second = request.steps.order_by("order")
    with django_capture_on_commit_callbacks(execute=True):
        approval_step_decide(step=first, acting_user=cast.manager.user, approve=True)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == ApprovalStepStatus.APPROVED and first.decided_by == cast.manager.user
    assert second.status == ApprovalStepStatus.PENDING
    assert perms_on(first) == set()
    assert perms_on(second) == {"owner"}
    with django_capture_on_commit_callbacks(execute=True):
        approval_step_decide(step=second, acting_user=cast.owner.user, approve=True, comment="Welcome.")
    request.refresh_from_db()
    assert request.status == AccessRequestStatus.APPROVED
    assert request.entitlement.status == EntitlementStatus.ACTIVE
    assert request.entitlement.level == "write"
    assert request.entitlement.source == "request"
    assert len(webhook_server.calls_for("provision")) == 1
    assert mailoutbox[-1].to == ["employee@example.com"]
    assert "Approved: your access to GitHub" in mailoutbox[-1].subject
    assert not ApprovalStepUserObjectPermission.objects.exists()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.APPROVE).count() == 2


def test_fulfilling_twice_provisions_once(cast, webhook_server, django_capture_on_commit_callbacks):

    cast.owner_app.connector = "webhook"
    cast.owner_app.connector_config = webhook_server.connector_config()
    cast.owner_app.save()
    request = ask(cast, cast.owner_app)
    with django_capture_on_commit_callbacks(execute=True):
        approval_step_decide(step=request.steps.get(), acting_user=cast.owner.user, approve=True)
    with django_capture_on_commit_callbacks(execute=True):
        again = access_request_fulfil(request_id=request.pk)
    assert again["note"] == "already"
    assert Task.objects.filter(key=f"request:{request.pk}").count() == 1
    assert Entitlement.objects.filter(employee=cast.employee, application=cast.owner_app).count() == 1
    assert len(webhook_server.calls_for("provision")) == 1


def test_time_bound_access_gets_a_notice_then_is_revoked_once(
    cast, webhook_server, django_capture_on_commit_callbacks, mailoutbox
):

    cast.capped_app.connector = "webhook"
    cast.capped_app.connector_config = webhook_server.connector_config()
    cast.capped_app.save()
    now = timezone.now()
    entitlement = EntitlementFactory(
        employee=cast.employee, application=cast.capped_app, expires_at=now + datetime.timedelta(days=2)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert entitlements_notify_expiry(now=now)["notified"] == [entitlement.pk]
        assert entitlements_notify_expiry(now=now)["notified"] == []
    assert "ends soon" in mailoutbox[-1].subject
    later = now + datetime.timedelta(days=2, minutes=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert access_expire_due(now=later)["queued"] == [entitlement.pk]
    with django_capture_on_commit_callbacks(execute=True):
        assert access_expire_due(now=later)["queued"] == []
    entitlement.refresh_from_db()
    assert entitlement.status == EntitlementStatus.REVOKED
    assert Task.objects.filter(key=f"expire:{entitlement.pk}").count() == 1
    assert len(webhook_server.calls_for("revoke")) == 1


def test_a_leavers_own_pending_requests_are_cancelled_at_the_cut_off(cast, django_capture_on_commit_callbacks):

    request = ask(cast)
    step = request.steps.get(order=1)
    with django_capture_on_commit_callbacks(execute=True):
        employee_terminate(
            employee=cast.employee, last_day=timezone.localdate(), acting_user=cast.helpdesk, immediate=True
        )
    request.refresh_from_db()
    assert request.status == AccessRequestStatus.CANCELLED
    assert list(access.steps_for_decider(cast.manager.user)) == []
    assert perms_on(step) == set()


def test_a_movers_manager_steps_follow_them_to_the_new_manager(cast, django_capture_on_commit_callbacks):

    request = ask(cast)
    step = request.steps.get(order=1)
    with django_capture_on_commit_callbacks(execute=True):
        mover_apply(employee=cast.employee, changes={"manager": cast.other_manager}, acting_user=cast.helpdesk)
    step.refresh_from_db()
    assert step.approver == cast.other_manager
    assert perms_on(step) == {"other-manager"}
    assert list(access.steps_for_decider(cast.manager.user)) == []
    approval_step_decide(step=step, acting_user=cast.other_manager.user, approve=True)
    assert request.steps.get(order=2).status == ApprovalStepStatus.PENDING
