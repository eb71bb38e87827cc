"""Opening and withdrawing access requests (`accounts.services.access_requests`).

Uses the `cast` fixture (root conftest): Erin (employee) reports to Morgan (manager); Owen owns
GitHub (manager, then owner), Figma (owner) and Prod DB (manager, at most 30 days); Slack needs
no approval. What happens once a request is approved (provisioning) is the lifecycle's, tested
in `offboarding/tests/test_accounts_access_requests.py`.
"""

import datetime

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from guardian.core import ObjectPermissionChecker

from accounts.models import (
    CANCEL_REQUEST,
    AccessRequest,
    AccessRequestStatus,
    ApprovalStep,
    ApprovalStepStatus,
)
from accounts.services.access_requests import access_request_cancel
from accounts.services.approval_steps import approval_step_decide
from accounts.tests.factories import EntitlementFactory
from accounts.tests.helpers import ask, perms_on
from portal.models import AuditEvent
from portal.testing.assertions import refused_and_nothing_written

pytestmark = pytest.mark.django_db


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
    assert CANCEL_REQUEST in ObjectPermissionChecker(cast.employee.user).get_user_perms(request)


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"justification": "   "}, "justification", "justification is required"),
        ({"end_date": datetime.date(2020, 1, 1)}, "end_date", "is in the past"),
        ({"level": "god-mode"}, "level", "has no level 'god-mode'"),
    ],
)
def test_bad_requests_are_refused_with_the_field_and_write_nothing(cast, kwargs, field, message):
    with refused_and_nothing_written(ValidationError) as exc:
        ask(cast, **kwargs)
    assert field in exc.value.message_dict
    assert message in " ".join(exc.value.message_dict[field])
    assert not AccessRequest.objects.exists()
    assert not ApprovalStep.objects.exists()


def test_end_date_is_required_and_capped_where_the_application_has_a_maximum(cast):
    with refused_and_nothing_written(ValidationError) as exc:
        ask(cast, cast.capped_app)
    assert "at most 30 days" in exc.value.message_dict["end_date"][0]
    too_late = timezone.localdate() + datetime.timedelta(days=31)
    with refused_and_nothing_written(ValidationError) as exc:
        ask(cast, cast.capped_app, end_date=too_late)
    assert "the latest end date is" in exc.value.message_dict["end_date"][0]
    assert not AccessRequest.objects.exists()
    ok = ask(cast, cast.capped_app, end_date=timezone.localdate() + datetime.timedelta(days=30))
    assert ok.status == AccessRequestStatus.PENDING


def test_access_already_held_or_already_pending_is_refused(cast):
    EntitlementFactory(employee=cast.employee, application=cast.owner_app)
    with refused_and_nothing_written(ValidationError, match="You already have access to Figma"):
        ask(cast, cast.owner_app)
    first = ask(cast)
    with refused_and_nothing_written(
        ValidationError, match=f"already have a pending request for GitHub \\(request #{first.pk}\\)"
    ):
        ask(cast)
    assert AccessRequest.objects.count() == 1


def test_an_application_that_is_not_requestable_is_refused(cast):
    cast.app.requestable = False
    cast.app.save()
    with refused_and_nothing_written(ValidationError, match="cannot be requested in self-service"):
        ask(cast)


def test_nobody_approves_their_own_request(cast):
    # The owner asks for their own application (owner policy): their manager decides instead.
    request = ask(cast, cast.owner_app, who=cast.owner)
    (step,) = request.steps.all()
    assert step.approver == cast.head


def test_a_request_without_a_manager_on_record_is_refused(cast):
    cast.employee.manager = None
    cast.employee.save()
    with refused_and_nothing_written(ValidationError, match="you have no manager on record"):
        ask(cast)
    assert not AccessRequest.objects.exists()


def test_the_requester_cancels_a_pending_request_and_nobody_can_decide_it_any_more(cast):
    request = ask(cast)
    step = request.steps.get(order=1)
    with refused_and_nothing_written(PermissionDenied):
        access_request_cancel(request=request, acting_user=cast.manager.user)
    access_request_cancel(request=request, acting_user=cast.employee.user)
    request.refresh_from_db()
    assert request.status == AccessRequestStatus.CANCELLED
    assert set(request.steps.values_list("status", flat=True)) == {ApprovalStepStatus.SKIPPED}
    assert perms_on(step) == set()
    with refused_and_nothing_written(ValidationError, match="only a pending request can be cancelled"):
        access_request_cancel(request=request, acting_user=cast.employee.user)
    with refused_and_nothing_written(ValidationError):
        approval_step_decide(step=step, acting_user=cast.manager.user, approve=True)
