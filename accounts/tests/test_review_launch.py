"""Launching an access review on the queue: checked in the request, frozen by a worker in committed batches,
idempotent (a second delivery does nothing) and resumable (a launch that died halfway goes on without
duplicates); a launch that can no longer finish goes back to draft and says why."""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts import tasks
from accounts.models import AccessReview, AccessReviewStatus, EmployeeStatus, ReviewItem
from accounts.services import reviews
from accounts.tests.factories import ApplicationFactory, EntitlementFactory
from accounts.tests.test_reviews import make_campaign
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def five(cast, monkeypatch):
    """A campaign over five entitlements of the teammate (manager reviews), written two at a time."""
    monkeypatch.setattr(reviews, "LAUNCH_BATCH", 2)
    apps = [ApplicationFactory(name=f"Tool {i}") for i in range(5)]
    for app in apps:
        EntitlementFactory(employee=cast.teammate, application=app)
    return make_campaign(applications=apps)


def queued_tasks(callbacks) -> list[str]:
    return [c.__qualname__ for c in callbacks]


def test_launching_checks_in_the_request_and_queues_the_freezing(
    cast, five, it_admin, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        campaign = reviews.review_campaign_launch_queue(campaign=five, acting_user=it_admin)

    assert queued_tasks(callbacks) == [f"enqueue_on_commit({reviews.LAUNCH_TASK})"]
    assert (campaign.status, campaign.item_count, campaign.launched_by) == ("launching", 5, it_admin)
    assert not ReviewItem.objects.exists()  # nothing frozen in the request
    assert reviews.review_items_for_reviewer(cast.manager).count() == 0

    assert tasks.access_review_launch(campaign.pk) == "launched"
    campaign.refresh_from_db()
    assert (campaign.status, campaign.item_count, campaign.launch_heartbeat_at) == ("active", 5, None)
    assert reviews.review_items_for_reviewer(cast.manager).count() == 5
    assert AuditEvent.objects.filter(action=AuditEvent.Action.REVIEW_LAUNCHED, target_id=str(campaign.pk)).count() == 1


def test_a_second_delivery_does_nothing(five):
    campaign = reviews.review_campaign_launch_queue(campaign=five, acting_user=None)
    assert reviews.review_campaign_launch_run(campaign_id=campaign.pk) == "launched"
    assert reviews.review_campaign_launch_run(campaign_id=campaign.pk) == "not claimed"
    assert campaign.items.count() == 5
    assert AuditEvent.objects.filter(action=AuditEvent.Action.REVIEW_LAUNCHED).count() == 1


def test_a_launch_that_died_halfway_resumes_without_duplicates(five, monkeypatch):
    campaign = reviews.review_campaign_launch_queue(campaign=five, acting_user=None)
    real = reviews.bulk_create_with_history
    calls = []

    def dies_on_the_second_batch(items, *args, **kwargs):
        calls.append(len(items))
        if len(calls) == 2:
            raise RuntimeError("worker killed")
        return real(items, *args, **kwargs)

    monkeypatch.setattr(reviews, "bulk_create_with_history", dies_on_the_second_batch)
    with pytest.raises(RuntimeError):
        reviews.review_campaign_launch_run(campaign_id=campaign.pk)
    monkeypatch.setattr(reviews, "bulk_create_with_history", real)
    campaign.refresh_from_db()
    assert campaign.status == "launching" and campaign.items.count() == 2  # the first batch was committed
    progress = reviews.review_campaign_launch_progress(campaign)
    assert (progress["done"], progress["total"], progress["percent"], progress["stalled"]) == (2, 5, 40, False)

    # Redelivered at once: the dead worker's claim is still fresh, so nobody takes it over yet.
    assert reviews.review_campaign_launch_run(campaign_id=campaign.pk) == "not claimed"
    # Once the claim is stale, the next delivery goes on after the last entitlement frozen.
    AccessReview.objects.filter(pk=campaign.pk).update(
        launch_heartbeat_at=timezone.now() - reviews.LAUNCH_STALE - datetime.timedelta(seconds=1)
    )
    assert reviews.review_campaign_launch_progress(AccessReview.objects.get(pk=campaign.pk))["stalled"]
    assert reviews.review_campaign_launch_run(campaign_id=campaign.pk) == "launched"

    campaign.refresh_from_db()
    assert (campaign.status, campaign.item_count) == ("active", 5)
    entitlements = list(campaign.items.values_list("entitlement_id", flat=True))
    assert len(entitlements) == len(set(entitlements)) == 5


def test_a_worker_that_lost_its_claim_writes_nothing_more(five, monkeypatch):
    campaign = reviews.review_campaign_launch_queue(campaign=five, acting_user=None)
    real = reviews.bulk_create_with_history

    def taken_over_after_one_batch(items, *args, **kwargs):
        result = real(items, *args, **kwargs)
        AccessReview.objects.filter(pk=campaign.pk).update(launch_heartbeat_at=timezone.now())  # another worker
        return result

    monkeypatch.setattr(reviews, "bulk_create_with_history", taken_over_after_one_batch)
    assert reviews.review_campaign_launch_run(campaign_id=campaign.pk) == "not claimed"
    assert campaign.items.count() == 2
    assert AccessReview.objects.get(pk=campaign.pk).status == "launching"


def test_a_launch_whose_items_lost_their_reviewer_meanwhile_goes_back_to_draft_naming_them(cast, five):
    campaign = reviews.review_campaign_launch_queue(campaign=five, acting_user=None)
    # After the check, before the worker: the manager and everyone above leave.
    for person in (cast.manager, cast.head):
        person.status = EmployeeStatus.TERMINATED
        person.save()

    assert reviews.review_campaign_launch_run(campaign_id=campaign.pk) == "refused"
    campaign.refresh_from_db()
    assert (campaign.status, campaign.item_count, campaign.launched_at) == (AccessReviewStatus.DRAFT, 0, None)
    assert "5 items would have nobody to review them: Tom Teammate · Tool 0 (user)" in campaign.launch_error
    assert not ReviewItem.objects.exists()
    with pytest.raises(ValidationError, match="nobody to review"):
        reviews.review_campaign_launch_queue(campaign=campaign, acting_user=None)  # still refused up front


def test_a_campaign_being_launched_is_not_queued_twice_but_a_lost_launch_is_resumed(
    five, django_capture_on_commit_callbacks
):
    campaign = reviews.review_campaign_launch_queue(campaign=five, acting_user=None)
    AccessReview.objects.filter(pk=campaign.pk).update(launch_heartbeat_at=timezone.now())
    with pytest.raises(ValidationError, match="is being launched"):
        reviews.review_campaign_launch_queue(campaign=campaign, acting_user=None)

    old = timezone.now() - reviews.LAUNCH_STALE - datetime.timedelta(minutes=1)
    AccessReview.objects.filter(pk=campaign.pk).update(launch_heartbeat_at=old, launched_at=old)
    with django_capture_on_commit_callbacks() as callbacks:
        assert reviews.review_campaigns_hourly()["resumed"] == [campaign.pk]
    assert f"enqueue_on_commit({reviews.LAUNCH_TASK})" in queued_tasks(callbacks)
    with django_capture_on_commit_callbacks() as callbacks:
        reviews.review_campaign_launch_queue(campaign=campaign, acting_user=None)  # IT launches it again
    assert queued_tasks(callbacks) == [f"enqueue_on_commit({reviews.LAUNCH_TASK})"]
    assert reviews.review_campaign_launch_run(campaign_id=campaign.pk) == "launched"
    assert campaign.items.count() == 5
