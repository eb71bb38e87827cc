"""Access requests and their approval chains, delegation, reminders and expiry (accounts.approvals).

Uses the `cast` fixture (root conftest): Erin (employee) reports to Morgan (manager); Owen owns
GitHub (manager, then owner), Figma (owner) and Prod DB (manager, at most 30 days); Slack needs
no approval.
"""

import datetime
import threading

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.utils import timezone
from guardian.core import ObjectPermissionChecker

from accounts import access, approvals
from accounts.models import (
    AccessRequest,
    AccessRequestStatus,
    ApprovalDelegation,
    ApprovalStep,
    ApprovalStepStatus,
    ApprovalStepUserObjectPermission,
    Entitlement,
    EntitlementStatus,
)
from accounts.tests.factories import EntitlementFactory
from offboarding.models import ChecklistKind, Task
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db


def ask(cast, app=None, *, who=None, level=None, justification="For the Q3 project.", end_date=None):
    who = who or cast.employee
    app = app or cast.app
    return approvals.access_request_create(
        employee=who,
        application=app,
        level=level or app.access_levels[0],
        justification=justification,
        end_date=end_date,
        acting_user=who.user,
    )


def perms_on(step) -> set[str]:
    """Usernames holding the decide permission on `step`."""
    return set(
        ApprovalStepUserObjectPermission.objects.filter(content_object=step).values_list("user__username", flat=True)
    )


# --- Creating a request ---------------------------------------------------------------------------


def test_manager_then_owner_policy_opens_the_manager_step_and_tells_the_manager(
    cast, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        request = ask(cast)
        assert mailoutbox == []  # told once the request is committed, not before
    first, second = request.steps.order_by("order")
    assert (first.kind, first.approver, first.status) == ("manager", cast.manager, ApprovalStepStatus.PENDING)
    assert (second.kind, second.approver, second.status) == ("owner", cast.owner, ApprovalStepStatus.WAITING)
    assert first.activated_at is not None
    assert perms_on(first) == {"manager"}
    assert perms_on(second) == set()
    assert [m.to for m in mailoutbox] == [["manager@example.com"]]
    assert f"/approvals/{first.pk}/" in mailoutbox[0].body
    assert AuditEvent.objects.filter(action=AuditEvent.Action.REQUEST, target_id=str(request.pk)).exists()
    assert "cancel_accessrequest" in ObjectPermissionChecker(cast.employee.user).get_user_perms(request)


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"justification": "   "}, "justification", "justification is required"),
        ({"end_date": datetime.date(2020, 1, 1)}, "end_date", "is in the past"),
        ({"level": "god-mode"}, "level", "has no level 'god-mode'"),
    ],
)
def test_bad_requests_are_refused_with_the_field_and_write_nothing(cast, kwargs, field, message):
    with pytest.raises(ValidationError) as exc:
        ask(cast, **kwargs)
    assert field in exc.value.message_dict
    assert message in " ".join(exc.value.message_dict[field])
    assert not AccessRequest.objects.exists()
    assert not ApprovalStep.objects.exists()


def test_end_date_is_required_and_capped_where_the_application_has_a_maximum(cast):
    with pytest.raises(ValidationError) as exc:
        ask(cast, cast.capped_app)
    assert "at most 30 days" in exc.value.message_dict["end_date"][0]
    too_late = timezone.localdate() + datetime.timedelta(days=31)
    with pytest.raises(ValidationError) as exc:
        ask(cast, cast.capped_app, end_date=too_late)
    assert "the latest end date is" in exc.value.message_dict["end_date"][0]
    assert not AccessRequest.objects.exists()
    ok = ask(cast, cast.capped_app, end_date=timezone.localdate() + datetime.timedelta(days=30))
    assert ok.status == AccessRequestStatus.PENDING


def test_access_already_held_or_already_pending_is_refused(cast):
    EntitlementFactory(employee=cast.employee, application=cast.owner_app)
    with pytest.raises(ValidationError, match="You already have access to Figma"):
        ask(cast, cast.owner_app)
    first = ask(cast)
    with pytest.raises(ValidationError, match=f"already have a pending request for GitHub \\(request #{first.pk}\\)"):
        ask(cast)
    assert AccessRequest.objects.count() == 1


def test_an_application_that_is_not_requestable_is_refused(cast):
    cast.app.requestable = False
    cast.app.save()
    with pytest.raises(ValidationError, match="cannot be requested in self-service"):
        ask(cast)


def test_nobody_approves_their_own_request(cast):
    # The owner asks for their own application (owner policy): their manager decides instead.
    request = ask(cast, cast.owner_app, who=cast.owner)
    (step,) = request.steps.all()
    assert step.approver == cast.head


def test_a_request_without_a_manager_on_record_is_refused(cast):
    cast.employee.manager = None
    cast.employee.save()
    with pytest.raises(ValidationError, match="you have no manager on record"):
        ask(cast)
    assert not AccessRequest.objects.exists()


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


# --- Deciding ------------------------------------------------------------------------------------


def test_the_chain_runs_manager_then_owner_then_provisions_through_the_connector(
    cast, webhook_server, django_capture_on_commit_callbacks, mailoutbox
):
    cast.app.connector = "webhook"
    cast.app.connector_config = webhook_server.connector_config()
    cast.app.save()
    request = ask(cast, level="write")
    first, second = request.steps.order_by("order")
    with django_capture_on_commit_callbacks(execute=True):
        approvals.approval_step_decide(step=first, acting_user=cast.manager.user, approve=True)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == ApprovalStepStatus.APPROVED and first.decided_by == cast.manager.user
    assert second.status == ApprovalStepStatus.PENDING
    assert perms_on(first) == set()
    assert perms_on(second) == {"owner"}
    with django_capture_on_commit_callbacks(execute=True):
        approvals.approval_step_decide(step=second, acting_user=cast.owner.user, approve=True, comment="Welcome.")
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
    from offboarding.access_changes import access_request_fulfil

    cast.owner_app.connector = "webhook"
    cast.owner_app.connector_config = webhook_server.connector_config()
    cast.owner_app.save()
    request = ask(cast, cast.owner_app)
    with django_capture_on_commit_callbacks(execute=True):
        approvals.approval_step_decide(step=request.steps.get(), acting_user=cast.owner.user, approve=True)
    with django_capture_on_commit_callbacks(execute=True):
        again = access_request_fulfil(request_id=request.pk)
    assert again["note"] == "already"
    assert Task.objects.filter(key=f"request:{request.pk}").count() == 1
    assert Entitlement.objects.filter(employee=cast.employee, application=cast.owner_app).count() == 1
    assert len(webhook_server.calls_for("provision")) == 1


def test_a_rejection_needs_a_comment_ends_the_request_and_tells_the_requester(
    cast, mailoutbox, django_capture_on_commit_callbacks
):
    request = ask(cast)
    first = request.steps.get(order=1)
    with pytest.raises(ValidationError) as exc:
        approvals.approval_step_decide(step=first, acting_user=cast.manager.user, approve=False, comment=" ")
    assert "comment" in exc.value.message_dict
    first.refresh_from_db()
    assert first.status == ApprovalStepStatus.PENDING
    with django_capture_on_commit_callbacks(execute=True):
        approvals.approval_step_decide(step=first, acting_user=cast.manager.user, approve=False, comment="Use Jira.")
    request.refresh_from_db()
    assert request.status == AccessRequestStatus.REJECTED
    assert request.steps.get(order=2).status == ApprovalStepStatus.SKIPPED
    assert "Not approved" in mailoutbox[-1].subject and "Use Jira." in mailoutbox[-1].body
    assert not Entitlement.objects.filter(application=cast.app).exists()


def test_a_decided_step_cannot_be_decided_again(cast):
    request = ask(cast, cast.owner_app)
    step = request.steps.get()
    approvals.approval_step_decide(step=step, acting_user=cast.owner.user, approve=True)
    with pytest.raises(ValidationError, match="already approved by owner"):
        approvals.approval_step_decide(step=step, acting_user=cast.owner.user, approve=False, comment="Oops")
    step.refresh_from_db()
    assert step.status == ApprovalStepStatus.APPROVED


@pytest.mark.parametrize("who", ["other_manager", "owner", "employee", "helpdesk"])
def test_someone_else_cannot_decide_a_step(cast, who):
    request = ask(cast)
    step = request.steps.get(order=1)
    with pytest.raises(PermissionDenied):
        approvals.approval_step_decide(step=step, acting_user=cast.users[who], approve=True)
    step.refresh_from_db()
    assert step.status == ApprovalStepStatus.PENDING


def test_a_waiting_step_cannot_be_decided_before_its_turn(cast):
    request = ask(cast)
    second = request.steps.get(order=2)
    with pytest.raises(ValidationError, match="not waiting for a decision"):
        approvals.approval_step_decide(step=second, acting_user=cast.owner.user, approve=True)


def test_the_requester_cancels_a_pending_request_and_nobody_can_decide_it_any_more(cast):
    request = ask(cast)
    step = request.steps.get(order=1)
    with pytest.raises(PermissionDenied):
        approvals.access_request_cancel(request=request, acting_user=cast.manager.user)
    approvals.access_request_cancel(request=request, acting_user=cast.employee.user)
    request.refresh_from_db()
    assert request.status == AccessRequestStatus.CANCELLED
    assert set(request.steps.values_list("status", flat=True)) == {ApprovalStepStatus.SKIPPED}
    assert perms_on(step) == set()
    with pytest.raises(ValidationError, match="only a pending request can be cancelled"):
        approvals.access_request_cancel(request=request, acting_user=cast.employee.user)
    with pytest.raises(ValidationError):
        approvals.approval_step_decide(step=step, acting_user=cast.manager.user, approve=True)


# --- Delegation ----------------------------------------------------------------------------------


def test_a_delegate_decides_while_the_delegation_is_in_force(cast, mailoutbox, django_capture_on_commit_callbacks):
    request = ask(cast)
    step = request.steps.get(order=1)
    today = timezone.localdate()
    with django_capture_on_commit_callbacks(execute=True):
        delegation = approvals.delegation_create(
            delegator=cast.manager,
            delegate=cast.teammate,
            starts_on=today,
            ends_on=today + datetime.timedelta(days=5),
            reason="Holiday",
            acting_user=cast.manager.user,
        )
    assert perms_on(step) == {"manager", "teammate"}
    assert mailoutbox[-1].to == ["teammate@example.com"]
    assert list(access.steps_for_decider(cast.teammate.user)) == [step]
    # A step that opens during the delegation is the delegate's to decide too.
    later = ask(cast, cast.capped_app, who=cast.teammate, end_date=today + datetime.timedelta(days=3))
    # ... but never their own request: the permission stays with the manager alone.
    assert perms_on(later.steps.get()) == {"manager"}
    assert not access.can_decide_step(cast.teammate.user, later.steps.get())
    assert list(access.steps_for_decider(cast.teammate.user)) == [step]
    approvals.approval_step_decide(step=step, acting_user=cast.teammate.user, approve=True, comment="For Morgan")
    step.refresh_from_db()
    assert step.decided_by == cast.teammate.user
    event = AuditEvent.objects.get(action=AuditEvent.Action.APPROVE)
    assert event.detail["on_behalf_of"] == cast.manager.pk
    approvals.delegation_cancel(delegation=delegation, acting_user=cast.manager.user)
    assert not ApprovalStepUserObjectPermission.objects.filter(user=cast.teammate.user).exists()


def test_a_future_delegation_does_not_let_the_delegate_decide_yet(cast):
    request = ask(cast)
    step = request.steps.get(order=1)
    start = timezone.localdate() + datetime.timedelta(days=3)
    approvals.delegation_create(
        delegator=cast.manager,
        delegate=cast.teammate,
        starts_on=start,
        ends_on=start + datetime.timedelta(days=2),
        acting_user=cast.manager.user,
    )
    assert not access.can_decide_step(cast.teammate.user, step)
    assert list(access.steps_for_decider(cast.teammate.user)) == []
    with pytest.raises(PermissionDenied):
        approvals.approval_step_decide(step=step, acting_user=cast.teammate.user, approve=True)
    assert access.can_decide_step(cast.teammate.user, step, day=start)


@pytest.mark.parametrize(
    ("delegate", "starts", "ends", "field", "message"),
    [
        ("manager", 0, 2, "delegate", "cannot delegate approvals to yourself"),
        ("teammate", -1, 2, "starts_on", "is in the past"),
        ("teammate", 3, 1, "ends_on", "cannot be before the first day"),
        (None, 0, 2, "delegate", "Choose the colleague"),
    ],
)
def test_bad_delegations_are_refused_and_write_nothing(cast, delegate, starts, ends, field, message):
    today = timezone.localdate()
    with pytest.raises(ValidationError) as exc:
        approvals.delegation_create(
            delegator=cast.manager,
            delegate=getattr(cast, delegate) if delegate else None,
            starts_on=today + datetime.timedelta(days=starts),
            ends_on=today + datetime.timedelta(days=ends),
            acting_user=cast.manager.user,
        )
    assert message in " ".join(exc.value.message_dict[field])
    assert not ApprovalDelegation.objects.exists()


def test_overlapping_delegations_are_refused(cast):
    today = timezone.localdate()
    approvals.delegation_create(
        delegator=cast.manager,
        delegate=cast.teammate,
        starts_on=today,
        ends_on=today + datetime.timedelta(days=5),
        acting_user=cast.manager.user,
    )
    with pytest.raises(ValidationError, match="You already delegate to Tom Teammate"):
        approvals.delegation_create(
            delegator=cast.manager,
            delegate=cast.owner,
            starts_on=today + datetime.timedelta(days=5),
            ends_on=today + datetime.timedelta(days=8),
            acting_user=cast.manager.user,
        )
    assert ApprovalDelegation.objects.count() == 1


# --- Periodic: reminders, notices, expiry ------------------------------------------------------


def test_approvers_are_reminded_once_per_interval(cast, mailoutbox):
    request = ask(cast)
    step = request.steps.get(order=1)
    mailoutbox.clear()
    now = timezone.now()
    assert approvals.approval_steps_remind(now=now + datetime.timedelta(days=1))["emails"] == 0
    assert approvals.approval_steps_remind(now=now + datetime.timedelta(days=2, minutes=1))["emails"] == 1
    assert "Reminder: 1 access request waiting for Morgan Manager" in mailoutbox[-1].subject
    assert f"/approvals/{step.pk}/" in mailoutbox[-1].body
    assert approvals.approval_steps_remind(now=now + datetime.timedelta(days=3))["emails"] == 0
    assert approvals.approval_steps_remind(now=now + datetime.timedelta(days=4, minutes=2))["emails"] == 1
    assert len(mailoutbox) == 2


def test_time_bound_access_gets_a_notice_then_is_revoked_once(
    cast, webhook_server, django_capture_on_commit_callbacks, mailoutbox
):
    from offboarding.access_changes import access_expire_due

    cast.capped_app.connector = "webhook"
    cast.capped_app.connector_config = webhook_server.connector_config()
    cast.capped_app.save()
    now = timezone.now()
    entitlement = EntitlementFactory(
        employee=cast.employee, application=cast.capped_app, expires_at=now + datetime.timedelta(days=2)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert approvals.entitlements_notify_expiry(now=now)["notified"] == [entitlement.pk]
        assert approvals.entitlements_notify_expiry(now=now)["notified"] == []
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


# --- Concurrency: two approvers at once -----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_deciders_at_once_make_one_decision(cast):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers (IMMEDIATE transactions): no real concurrency to test.")
    request = ask(cast)
    step = request.steps.get(order=1)
    today = timezone.localdate()
    approvals.delegation_create(
        delegator=cast.manager,
        delegate=cast.teammate,
        starts_on=today,
        ends_on=today,
        acting_user=cast.manager.user,
    )
    barrier = threading.Barrier(2)
    outcomes = []

    def decide(user, approve):
        from django.db import connections

        try:
            barrier.wait(timeout=10)
            approvals.approval_step_decide(step=step, acting_user=user, approve=approve, comment="race")
            outcomes.append("decided")
        except (ValidationError, PermissionDenied) as exc:
            outcomes.append(f"refused: {exc}")
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=decide, args=(cast.manager.user, True)),
        threading.Thread(target=decide, args=(cast.teammate.user, False)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(o.split(":")[0] for o in outcomes) == ["decided", "refused"]
    step.refresh_from_db()
    assert step.status in (ApprovalStepStatus.APPROVED, ApprovalStepStatus.REJECTED)
    assert AuditEvent.objects.filter(action__in=["approve", "reject"]).count() == 1


def test_a_leavers_own_pending_requests_are_cancelled_at_the_cut_off(cast, django_capture_on_commit_callbacks):
    from offboarding.flows import employee_terminate

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
    from offboarding.flows import mover_apply

    request = ask(cast)
    step = request.steps.get(order=1)
    with django_capture_on_commit_callbacks(execute=True):
        mover_apply(employee=cast.employee, changes={"manager": cast.other_manager}, acting_user=cast.helpdesk)
    step.refresh_from_db()
    assert step.approver == cast.other_manager
    assert perms_on(step) == {"other-manager"}
    assert list(access.steps_for_decider(cast.manager.user)) == []
    approvals.approval_step_decide(step=step, acting_user=cast.other_manager.user, approve=True)
    assert request.steps.get(order=2).status == ApprovalStepStatus.PENDING


def test_one_person_never_gives_two_approvals_of_one_request_even_as_a_delegate(cast):
    request = ask(cast)  # GitHub: the manager, then the owner
    first = request.steps.get(order=1)
    today = timezone.localdate()
    approvals.delegation_create(
        delegator=cast.manager, delegate=cast.owner, starts_on=today, ends_on=today, acting_user=cast.manager.user
    )
    assert perms_on(first) == {"manager"}
    assert not access.can_decide_step(cast.owner.user, first)
    assert list(access.steps_for_decider(cast.owner.user)) == []
    with pytest.raises(PermissionDenied):
        approvals.approval_step_decide(step=first, acting_user=cast.owner.user, approve=True)


def test_a_delegate_sees_what_waits_now_not_the_delegators_history(cast):
    from django.http import Http404

    old = ask(cast, cast.capped_app, end_date=timezone.localdate())
    decided = old.steps.get()
    approvals.approval_step_decide(step=decided, acting_user=cast.manager.user, approve=False, comment="No")
    waiting = ask(cast).steps.get(order=1)
    today = timezone.localdate()
    approvals.delegation_create(
        delegator=cast.manager, delegate=cast.teammate, starts_on=today, ends_on=today, acting_user=cast.manager.user
    )
    assert access.step_for_decider(cast.teammate.user, waiting.pk) == waiting
    with pytest.raises(Http404):
        access.step_for_decider(cast.teammate.user, decided.pk)
    # The owner's step of that request is not the owner's to read before the manager has decided.
    with pytest.raises(Http404):
        access.step_for_decider(cast.owner.user, waiting.request.steps.get(order=2).pk)
