"""Periodic emails: reminders to approvers, notices of access ending soon (`accounts.services.notices`)."""

import datetime

import pytest
from django.utils import timezone

from accounts.services.notices import approval_steps_remind, entitlements_notify_expiry
from accounts.tests.factories import EntitlementFactory
from accounts.tests.helpers import ask

pytestmark = pytest.mark.django_db


def test_approvers_are_reminded_once_per_interval(cast, mailoutbox):
    request = ask(cast)
    step = request.steps.get(order=1)
    mailoutbox.clear()
    now = timezone.now()
    assert approval_steps_remind(now=now + datetime.timedelta(days=1))["emails"] == 0
    assert approval_steps_remind(now=now + datetime.timedelta(days=2, minutes=1))["emails"] == 1
    assert "Reminder: 1 access request waiting for Morgan Manager" in mailoutbox[-1].subject
    assert f"/approvals/{step.pk}/" in mailoutbox[-1].body
    assert approval_steps_remind(now=now + datetime.timedelta(days=3))["emails"] == 0
    assert approval_steps_remind(now=now + datetime.timedelta(days=4, minutes=2))["emails"] == 1
    assert len(mailoutbox) == 2


def test_access_ending_soon_is_noticed_once_to_its_holder(cast, mailoutbox, django_capture_on_commit_callbacks):
    now = timezone.now()
    soon = EntitlementFactory(
        employee=cast.employee, application=cast.capped_app, expires_at=now + datetime.timedelta(days=2)
    )
    EntitlementFactory(employee=cast.teammate, application=cast.capped_app, expires_at=now + datetime.timedelta(days=9))

    with django_capture_on_commit_callbacks(execute=True):
        assert entitlements_notify_expiry(now=now)["notified"] == [soon.pk]
        assert entitlements_notify_expiry(now=now)["notified"] == []

    assert [m.to for m in mailoutbox] == [["employee@example.com"]]
    assert "ends soon" in mailoutbox[0].subject
