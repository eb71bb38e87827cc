"""Out-of-office delegation of approvals (`accounts.services.delegations`).

Uses the `cast` fixture (root conftest): Morgan (manager) delegates to Tom (teammate), who is also
one of Morgan's reports; Erin (employee) asks for GitHub (manager, then owner).
"""

import datetime

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from accounts import access
from accounts.models import ApprovalDelegation, ApprovalStepUserObjectPermission
from accounts.services.approval_steps import approval_step_decide
from accounts.services.delegations import delegation_cancel, delegation_create
from accounts.tests.helpers import ask, perms_on
from portal.models import AuditEvent
from portal.testing.assertions import refused_and_nothing_written

pytestmark = pytest.mark.django_db


def test_a_delegate_decides_while_the_delegation_is_in_force(cast, mailoutbox, django_capture_on_commit_callbacks):
    request = ask(cast)
    step = request.steps.get(order=1)
    today = timezone.localdate()
    with django_capture_on_commit_callbacks(execute=True):
        delegation = delegation_create(
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
    approval_step_decide(step=step, acting_user=cast.teammate.user, approve=True, comment="For Morgan")
    step.refresh_from_db()
    assert step.decided_by == cast.teammate.user
    event = AuditEvent.objects.get(action=AuditEvent.Action.APPROVE)
    assert event.detail["on_behalf_of"] == cast.manager.pk
    delegation_cancel(delegation=delegation, acting_user=cast.manager.user)
    assert not ApprovalStepUserObjectPermission.objects.filter(user=cast.teammate.user).exists()


def test_a_future_delegation_does_not_let_the_delegate_decide_yet(cast):
    request = ask(cast)
    step = request.steps.get(order=1)
    start = timezone.localdate() + datetime.timedelta(days=3)
    delegation_create(
        delegator=cast.manager,
        delegate=cast.teammate,
        starts_on=start,
        ends_on=start + datetime.timedelta(days=2),
        acting_user=cast.manager.user,
    )
    assert not access.can_decide_step(cast.teammate.user, step)
    assert list(access.steps_for_decider(cast.teammate.user)) == []
    with refused_and_nothing_written(PermissionDenied):
        approval_step_decide(step=step, acting_user=cast.teammate.user, approve=True)
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
    with refused_and_nothing_written(ValidationError) as exc:
        delegation_create(
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
    delegation_create(
        delegator=cast.manager,
        delegate=cast.teammate,
        starts_on=today,
        ends_on=today + datetime.timedelta(days=5),
        acting_user=cast.manager.user,
    )
    with refused_and_nothing_written(ValidationError, match="You already delegate to Tom Teammate"):
        delegation_create(
            delegator=cast.manager,
            delegate=cast.owner,
            starts_on=today + datetime.timedelta(days=5),
            ends_on=today + datetime.timedelta(days=8),
            acting_user=cast.manager.user,
        )
    assert ApprovalDelegation.objects.count() == 1
