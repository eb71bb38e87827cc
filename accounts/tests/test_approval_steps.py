"""Approval steps: deciding them, one decision per step, and handing them on (`accounts.services.approval_steps`).

Uses the `cast` fixture (root conftest): Erin (employee) reports to Morgan (manager), who reports
to Hana (head); Owen owns GitHub (manager, then owner) and Figma (owner); Olga is another manager.
"""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.utils import timezone

from accounts import access
from accounts.models import (
    AccessRequestStatus,
    ApprovalStepStatus,
    Entitlement,
)
from accounts.services.approval_steps import (
    approval_step_decide,
    approval_steps_follow_manager,
    approvals_hand_over,
)
from accounts.services.delegations import delegation_create
from accounts.tests.helpers import ask, perms_on
from portal.models import AuditEvent
from portal.testing.assertions import refused_and_nothing_written
from portal.testing.concurrency import kinds, run_at_once

pytestmark = pytest.mark.django_db


def test_a_rejection_needs_a_comment_ends_the_request_and_tells_the_requester(
    cast, mailoutbox, django_capture_on_commit_callbacks
):
    request = ask(cast)
    first = request.steps.get(order=1)
    with refused_and_nothing_written(ValidationError) as exc:
        approval_step_decide(step=first, acting_user=cast.manager.user, approve=False, comment=" ")
    assert "comment" in exc.value.message_dict
    first.refresh_from_db()
    assert first.status == ApprovalStepStatus.PENDING
    with django_capture_on_commit_callbacks(execute=True):
        approval_step_decide(step=first, acting_user=cast.manager.user, approve=False, comment="Use Jira.")
    request.refresh_from_db()
    assert request.status == AccessRequestStatus.REJECTED
    assert request.steps.get(order=2).status == ApprovalStepStatus.SKIPPED
    assert "Not approved" in mailoutbox[-1].subject and "Use Jira." in mailoutbox[-1].body
    assert not Entitlement.objects.filter(application=cast.app).exists()


def test_a_decided_step_cannot_be_decided_again(cast):
    request = ask(cast, cast.owner_app)
    step = request.steps.get()
    approval_step_decide(step=step, acting_user=cast.owner.user, approve=True)
    with refused_and_nothing_written(ValidationError, match="already approved by owner"):
        approval_step_decide(step=step, acting_user=cast.owner.user, approve=False, comment="Oops")
    step.refresh_from_db()
    assert step.status == ApprovalStepStatus.APPROVED


@pytest.mark.parametrize("who", ["other_manager", "owner", "employee", "helpdesk"])
def test_someone_else_cannot_decide_a_step(cast, who):
    request = ask(cast)
    step = request.steps.get(order=1)
    with refused_and_nothing_written(PermissionDenied):
        approval_step_decide(step=step, acting_user=cast.users[who], approve=True)
    step.refresh_from_db()
    assert step.status == ApprovalStepStatus.PENDING


def test_a_waiting_step_cannot_be_decided_before_its_turn(cast):
    request = ask(cast)
    second = request.steps.get(order=2)
    with refused_and_nothing_written(ValidationError, match="not waiting for a decision"):
        approval_step_decide(step=second, acting_user=cast.owner.user, approve=True)


@pytest.mark.django_db(transaction=True)
def test_two_deciders_at_once_make_one_decision(cast):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers (IMMEDIATE transactions): no real concurrency to test.")
    request = ask(cast)
    step = request.steps.get(order=1)
    today = timezone.localdate()
    delegation_create(
        delegator=cast.manager,
        delegate=cast.teammate,
        starts_on=today,
        ends_on=today,
        acting_user=cast.manager.user,
    )

    outcomes = run_at_once(
        lambda: approval_step_decide(step=step, acting_user=cast.manager.user, approve=True, comment="race"),
        lambda: approval_step_decide(step=step, acting_user=cast.teammate.user, approve=False, comment="race"),
    )

    assert kinds(outcomes) == ["error", "ok"]
    [error] = [value for kind, value in outcomes if kind == "error"]
    assert isinstance(error, ValidationError | PermissionDenied)
    step.refresh_from_db()
    assert step.status in (ApprovalStepStatus.APPROVED, ApprovalStepStatus.REJECTED)
    assert AuditEvent.objects.filter(action__in=["approve", "reject"]).count() == 1


def test_one_person_never_gives_two_approvals_of_one_request_even_as_a_delegate(cast):
    request = ask(cast)  # GitHub: the manager, then the owner
    first = request.steps.get(order=1)
    today = timezone.localdate()
    delegation_create(
        delegator=cast.manager, delegate=cast.owner, starts_on=today, ends_on=today, acting_user=cast.manager.user
    )
    assert perms_on(first) == {"manager"}
    assert not access.can_decide_step(cast.owner.user, first)
    assert list(access.steps_for_decider(cast.owner.user)) == []
    with refused_and_nothing_written(PermissionDenied):
        approval_step_decide(step=first, acting_user=cast.owner.user, approve=True)


def test_a_delegate_sees_what_waits_now_not_the_delegators_history(cast):
    from django.http import Http404

    old = ask(cast, cast.capped_app, end_date=timezone.localdate())
    decided = old.steps.get()
    approval_step_decide(step=decided, acting_user=cast.manager.user, approve=False, comment="No")
    waiting = ask(cast).steps.get(order=1)
    today = timezone.localdate()
    delegation_create(
        delegator=cast.manager, delegate=cast.teammate, starts_on=today, ends_on=today, acting_user=cast.manager.user
    )
    assert access.step_for_decider(cast.teammate.user, waiting.pk) == waiting
    with pytest.raises(Http404):
        access.step_for_decider(cast.teammate.user, decided.pk)
    # The owner's step of that request is not the owner's to read before the manager has decided.
    with pytest.raises(Http404):
        access.step_for_decider(cast.owner.user, waiting.request.steps.get(order=2).pk)


# --- Handing a step on: one function for the mover's new manager and the leaver's manager --------------


def _delegate_today(delegator, delegate):
    today = timezone.localdate()
    return delegation_create(
        delegator=delegator, delegate=delegate, starts_on=today, ends_on=today, acting_user=delegator.user
    )


def test_a_leavers_step_goes_to_their_manager_and_the_managers_delegate_may_decide_it(cast):
    step = ask(cast).steps.get(order=1)  # Morgan's, with Tom deciding for Morgan today
    _delegate_today(cast.manager, cast.teammate)
    _delegate_today(cast.head, cast.other_manager)  # Hana, who takes over, is away: Olga decides for her
    assert perms_on(step) == {"manager", "teammate"}

    outcome = approvals_hand_over(employee=cast.manager, acting_user=cast.helpdesk)

    assert outcome["approval_steps"] == [step.pk]
    step.refresh_from_db()
    assert step.approver == cast.head
    assert perms_on(step) == {"head", "other-manager"}  # the old approver and their delegate lose it
    assert not access.can_decide_step(cast.manager.user, step)
    assert not access.can_decide_step(cast.teammate.user, step)
    assert access.can_decide_step(cast.other_manager.user, step)
    [event] = AuditEvent.objects.filter(action=AuditEvent.Action.APPROVAL_HANDED_OVER)
    assert (event.actor, event.detail) == (
        cast.helpdesk,
        {"from": cast.manager.pk, "to": cast.head.pk, "request": step.request_id},
    )
    assert step.history.first().history_user == cast.helpdesk

    approval_step_decide(step=step, acting_user=cast.other_manager.user, approve=True)
    assert step.request.steps.get(order=2).status == ApprovalStepStatus.PENDING


def test_a_movers_step_goes_to_the_new_manager_and_their_delegate_may_decide_it(cast):
    step = ask(cast).steps.get(order=1)
    _delegate_today(cast.manager, cast.teammate)
    _delegate_today(cast.other_manager, cast.other_employee)  # Olga, the new manager, is away: Oscar decides
    cast.employee.manager = cast.other_manager
    cast.employee.save(update_fields=["manager"])

    moved = approval_steps_follow_manager(employee=cast.employee, acting_user=cast.helpdesk)

    assert moved == [step.pk]
    step.refresh_from_db()
    assert step.approver == cast.other_manager
    assert perms_on(step) == {"other-manager", "other-employee"}
    assert not access.can_decide_step(cast.manager.user, step)
    assert not access.can_decide_step(cast.teammate.user, step)
    [event] = AuditEvent.objects.filter(action=AuditEvent.Action.APPROVAL_MOVED)
    assert event.detail == {"from": cast.manager.pk, "to": cast.other_manager.pk, "request": step.request_id}

    approval_step_decide(step=step, acting_user=cast.other_employee.user, approve=True)
    step.refresh_from_db()
    assert step.decided_by == cast.other_employee.user


def test_a_waiting_step_handed_on_grants_nothing_until_it_opens(cast):
    request = ask(cast, cast.owner_app, who=cast.manager)  # Owen's step, pending
    waiting = ask(cast).steps.get(order=2)  # Erin's: Morgan's step pending, Owen's waiting
    assert waiting.status == ApprovalStepStatus.WAITING

    approvals_hand_over(employee=cast.owner, acting_user=None)

    waiting.refresh_from_db()
    assert waiting.approver == cast.head
    assert perms_on(waiting) == set()
    assert perms_on(request.steps.get()) == {"head"}
