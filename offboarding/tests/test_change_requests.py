"""Managers' move and leave requests (offboarding.flows.change_requests), confirmed or declined by IT."""

import datetime

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from accounts.tests.factories import RoleFactory
from offboarding.flows.change_requests import change_request_confirm, change_request_create, change_request_decline
from offboarding.models import (
    ChangeRequest,
    ChangeRequestStatus,
    ChecklistKind,
    ChecklistRun,
)

pytestmark = pytest.mark.django_db


# --- Managers' move and leave requests ----------------------------------------------------------


def test_a_manager_asks_for_a_leave_and_it_confirms_it(cast, mailoutbox, django_capture_on_commit_callbacks):
    last_day = timezone.localdate() + datetime.timedelta(days=14)
    with django_capture_on_commit_callbacks(execute=True):
        request = change_request_create(
            manager=cast.manager,
            employee=cast.employee,
            kind="leave",
            effective_date=last_day,
            reason="Resigned",
            acting_user=cast.manager.user,
        )
    assert mailoutbox[-1].to == ["it@example.com"]
    cast.employee.refresh_from_db()
    assert cast.employee.end_date is None  # nothing changes until IT confirms
    with django_capture_on_commit_callbacks(execute=True):
        confirmed = change_request_confirm(request=request, acting_user=cast.helpdesk)
    assert confirmed.status == ChangeRequestStatus.CONFIRMED
    assert confirmed.run.kind == ChecklistKind.LEAVE and confirmed.run.event_date == last_day
    assert mailoutbox[-1].to == ["manager@example.com"]
    with pytest.raises(ValidationError, match="cannot be decided again"):
        change_request_decline(request=request, note="no", acting_user=cast.helpdesk)


def test_a_move_request_is_applied_by_it_with_the_new_role(cast, django_capture_on_commit_callbacks):
    role = RoleFactory(name="Data Engineer")
    request = change_request_create(
        manager=cast.manager,
        employee=cast.employee,
        kind="move",
        effective_date=timezone.localdate(),
        reason="Joins the data team",
        new_role=role,
        acting_user=cast.manager.user,
    )
    with django_capture_on_commit_callbacks(execute=True):
        change_request_confirm(request=request, acting_user=cast.helpdesk)
    cast.employee.refresh_from_db()
    assert cast.employee.role == role
    assert ChecklistRun.objects.filter(employee=cast.employee, kind=ChecklistKind.MOVE).exists()


def test_change_requests_are_only_for_ones_own_reports_and_validated(cast):
    today = timezone.localdate()
    with pytest.raises(PermissionDenied):
        change_request_create(
            manager=cast.other_manager,
            employee=cast.employee,
            kind="leave",
            effective_date=today,
            reason="x",
            acting_user=cast.other_manager.user,
        )
    with pytest.raises(ValidationError) as exc:
        change_request_create(
            manager=cast.manager,
            employee=cast.employee,
            kind="move",
            effective_date=today - datetime.timedelta(days=1),
            reason=" ",
            acting_user=cast.manager.user,
        )
    assert set(exc.value.message_dict) == {"effective_date", "reason", "new_role"}
    change_request_create(
        manager=cast.manager, employee=cast.employee, kind="leave", effective_date=today, reason="x", acting_user=None
    )
    with pytest.raises(ValidationError, match="already waiting for IT"):
        change_request_create(
            manager=cast.manager,
            employee=cast.employee,
            kind="leave",
            effective_date=today,
            reason="y",
            acting_user=None,
        )
    assert ChangeRequest.objects.count() == 1


def test_it_declines_with_a_reason(cast, mailoutbox, django_capture_on_commit_callbacks):
    request = change_request_create(
        manager=cast.manager,
        employee=cast.employee,
        kind="leave",
        effective_date=timezone.localdate(),
        reason="Resigned",
        acting_user=None,
    )
    with pytest.raises(ValidationError):
        change_request_decline(request=request, note=" ", acting_user=cast.helpdesk)
    with django_capture_on_commit_callbacks(execute=True):
        change_request_decline(request=request, note="HR has not confirmed", acting_user=cast.helpdesk)
    request.refresh_from_db()
    assert request.status == ChangeRequestStatus.DECLINED
    assert "HR has not confirmed" in mailoutbox[-1].body
    assert not ChecklistRun.objects.filter(employee=cast.employee, kind=ChecklistKind.LEAVE).exists()


def test_the_manager_requests_a_leave_through_the_team_page(cast, client):
    client.force_login(cast.manager.user)
    page = client.get(reverse("offboarding:team")).content.decode()
    assert "Erin Employee" in page and "Oscar" not in page
    url = reverse("offboarding:change_request", args=[cast.employee.pk, "leave"])
    response = client.post(url, {"effective_date": "2001-01-01", "reason": "Resigned"})
    assert "is in the past" in response.content.decode()
    assert not ChangeRequest.objects.exists()
    day = (timezone.localdate() + datetime.timedelta(days=10)).isoformat()
    response = client.post(url, {"effective_date": day, "reason": "Resigned"}, follow=True)
    assert "is with IT" in response.content.decode()
    assert ChangeRequest.objects.get().status == ChangeRequestStatus.PENDING
