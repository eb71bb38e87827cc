"""Access review decisions go through the lifecycle engine as visible tasks, tracked to confirmed removal.

Real peers: a webhook receiver for automated applications; the manual connector hands the task to IT.
"""

import datetime

import pytest
from django.utils import timezone

from accounts.models import (
    AccessReview,
    EntitlementStatus,
    ReviewItem,
    ReviewItemState,
)
from accounts.services import reviews
from accounts.tests.factories import EntitlementFactory
from offboarding import engine
from offboarding.flows.access_changes import access_review_apply
from offboarding.models import ChecklistKind, Task, TaskStatus

pytestmark = pytest.mark.django_db


def automated(app, webhook_server):
    app.connector = "webhook"
    app.connector_config = webhook_server.connector_config()
    app.save()


@pytest.fixture
def campaign(cast):
    EntitlementFactory(employee=cast.employee, application=cast.app, level="write")
    today = timezone.localdate()
    campaign = reviews.review_campaign_save(
        campaign=AccessReview(
            name="Q1 GitHub", starts_on=today, due_on=today + datetime.timedelta(days=10), scope_everything=True
        ),
        acting_user=None,
    )
    return reviews.review_campaign_launch(campaign=campaign, acting_user=None)


def the_item():
    return ReviewItem.objects.select_related("entitlement").get()


def test_a_revoke_is_a_visible_engine_task_and_the_item_shows_the_confirmed_date(
    cast, campaign, webhook_server, settle
):
    automated(cast.app, webhook_server)

    settle(
        reviews.review_item_decide,
        item=the_item(),
        decision="revoke",
        comment="Left the project.",
        acting_user=cast.manager.user,
    )

    item = the_item()
    task = Task.objects.get(key=f"review:{item.pk}")
    assert task.run.kind == ChecklistKind.ACCESS and task.action == "revoke_entitlement"
    assert "access review" in task.title and task.status == TaskStatus.DONE
    assert item.entitlement.status == EntitlementStatus.REVOKED
    assert len(webhook_server.calls_for("revoke")) == 1
    assert item.state == ReviewItemState.APPLIED
    assert item.applied_at == item.entitlement.revoked_at
    # A second delivery of the hook adds nothing.
    assert settle(access_review_apply, item_id=item.pk)["note"] == "nothing to apply"
    assert Task.objects.filter(key__startswith=f"review:{item.pk}").count() == 1


def test_a_manual_application_waits_for_it_and_is_confirmed_when_it_completes_the_task(cast, campaign, it_user, settle):
    settle(
        reviews.review_item_decide,
        item=the_item(),
        decision="revoke",
        comment="No longer needed.",
        acting_user=cast.manager.user,
    )
    item = the_item()
    assert item.state == ReviewItemState.APPLYING and item.applied_at is None
    task = Task.objects.get(key=f"review:{item.pk}")
    assert task.status == TaskStatus.PENDING  # handed to IT: remove the account by hand

    settle(engine.task_complete, task=task, acting_user=it_user)

    item = the_item()
    assert item.state == ReviewItemState.APPLIED
    assert item.entitlement.status == EntitlementStatus.REVOKED
    assert item.applied_at == item.entitlement.revoked_at


def test_a_level_change_goes_through_the_connector(cast, campaign, webhook_server, settle):
    automated(cast.app, webhook_server)

    settle(
        reviews.review_item_decide,
        item=the_item(),
        decision="change_level",
        new_level="read",
        comment="Read is enough.",
        acting_user=cast.manager.user,
    )

    item = the_item()
    assert item.entitlement.level == "read"
    assert (item.state, item.new_level) == (ReviewItemState.APPLIED, "read")
    assert Task.objects.get(key=f"review:{item.pk}").action == "change_entitlement_level"


def test_a_change_the_engine_cannot_apply_stays_open_and_visible(cast, campaign, settle):
    entitlement = the_item().entitlement
    entitlement.status, entitlement.revoked_at = EntitlementStatus.REVOKED, timezone.now()
    entitlement.save()

    settle(
        reviews.review_item_decide,
        item=the_item(),
        decision="change_level",
        new_level="read",
        comment="",
        acting_user=cast.manager.user,
    )

    item = the_item()
    assert item.state == ReviewItemState.FAILED
    assert "revoked; its level cannot be changed" in item.apply_error
    assert reviews.review_progress(campaign)["failed"] == 1
    assert not reviews.review_campaign_close_if_finished(campaign=campaign)


def test_a_task_that_fails_for_good_marks_the_item_failed_and_it_can_send_it_again(
    cast, campaign, webhook_server, settle, it_user
):
    automated(cast.app, webhook_server)
    webhook_server.fail_always(503, "down")
    settle(
        reviews.review_item_decide, item=the_item(), decision="revoke", comment="Gone.", acting_user=cast.manager.user
    )
    item = the_item()
    task = Task.objects.get(key=f"review:{item.pk}")
    for _ in range(task.max_attempts):  # the retries, without waiting for their backoff
        Task.objects.filter(pk=task.pk, status=TaskStatus.PENDING).update(status=TaskStatus.QUEUED, not_before=None)
        settle(engine.task_execute, task_id=task.pk)
    task.refresh_from_db()
    assert task.status == TaskStatus.FAILED
    item = the_item()
    assert item.state == ReviewItemState.FAILED and "503" in item.apply_error

    webhook_server.behave()
    settle(reviews.review_item_reapply, item=item, acting_user=it_user)

    item = the_item()
    assert item.state == ReviewItemState.APPLIED
    assert Task.objects.filter(key__startswith=f"review:{item.pk}").count() == 1


def test_a_revocation_confirmed_by_another_path_is_recorded_by_the_hourly_run(cast, campaign, settle):
    settle(
        reviews.review_item_decide, item=the_item(), decision="revoke", comment="Gone.", acting_user=cast.manager.user
    )
    entitlement = the_item().entitlement
    at = timezone.now() - datetime.timedelta(minutes=5)
    entitlement.status, entitlement.revoked_at = EntitlementStatus.REVOKED, at
    entitlement.save()

    assert reviews.review_items_reconcile() == 1
    assert reviews.review_items_reconcile() == 0
    assert the_item().applied_at == at
