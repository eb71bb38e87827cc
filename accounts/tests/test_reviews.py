"""Access reviews: launching a campaign, who reviews what, decisions, the due date, reminders and evidence.

The lifecycle engine's part (revocation tasks and their confirmation) is in
`offboarding/tests/test_access_reviews.py`; the self-service pages in `test_review_views.py`.
"""

import datetime

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import (
    AccessReview,
    AccessReviewStatus,
    ApprovalDelegation,
    EmployeeStatus,
    EntitlementSource,
    ReviewerKind,
    ReviewerRule,
    ReviewItem,
    ReviewItemState,
    UnansweredRule,
)
from accounts.services import reviews
from accounts.tests.factories import (
    AccessRequestFactory,
    ApplicationFactory,
    EmployeeFactory,
    EntitlementFactory,
    UserFactory,
)
from portal.models import AuditEvent, OutboundEmail

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()


def make_campaign(acting_user=None, *, applications=(), departments=(), **fields) -> AccessReview:
    values = {
        "name": "Q1 review",
        "starts_on": TODAY,
        "due_on": TODAY + datetime.timedelta(days=14),
        "scope_everything": not (applications or departments or fields.get("min_sensitivity")),
        **fields,
    }
    campaign = reviews.review_campaign_save(campaign=AccessReview(**values), acting_user=acting_user)
    campaign.applications.set(applications)
    campaign.departments.set(departments)
    return campaign


def launch(campaign, user=None, **kwargs) -> AccessReview:
    return reviews.review_campaign_launch(campaign=campaign, acting_user=user, **kwargs)


# --- Launch: freezing items -------------------------------------------------------------------------


def test_launch_freezes_one_item_per_live_entitlement_with_what_was_true_then(cast, it_admin):
    used = timezone.now() - datetime.timedelta(days=3)
    held = EntitlementFactory(
        employee=cast.employee, application=cast.app, level="write", source=EntitlementSource.REQUEST, last_used_at=used
    )
    AccessRequestFactory(employee=cast.employee, application=cast.app, entitlement=held, justification="Code review.")
    EntitlementFactory(employee=cast.teammate, application=cast.app, status="revoked", revoked_at=timezone.now())
    campaign = make_campaign(it_admin, applications=[cast.app])

    launch(campaign, it_admin)

    item = ReviewItem.objects.get()
    assert (item.employee_name, item.application_name, item.level) == ("Erin Employee", "GitHub", "write")
    assert (item.granted_at, item.last_used_at, item.source) == (held.granted_at, used, "request")
    assert item.justification == "Code review."
    assert item.department_name == "Engineering"
    assert (item.reviewer, item.reviewer_kind, item.state) == (cast.manager, ReviewerKind.MANAGER, "open")
    campaign.refresh_from_db()
    assert (campaign.status, campaign.item_count, campaign.launched_by) == ("active", 1, it_admin)
    assert AuditEvent.objects.filter(action=AuditEvent.Action.REVIEW_LAUNCHED, target_id=str(campaign.pk)).exists()
    assert item.history.count() == 1 and campaign.history.count() >= 2
    # Later changes to the access do not rewrite what was reviewed.
    held.level = "read"
    held.save()
    item.refresh_from_db()
    assert item.level == "write"


def test_launch_writes_in_batches_with_a_constant_number_of_queries_per_batch(cast, monkeypatch):
    monkeypatch.setattr(reviews, "LAUNCH_BATCH", 5)

    def queries_for(n):
        ReviewItem.objects.all().delete()
        apps = [ApplicationFactory(name=f"Batch {n}-{i}") for i in range(n)]
        for app in apps:
            EntitlementFactory(employee=cast.teammate, application=app)
        campaign = make_campaign(applications=apps)
        with CaptureQueriesContext(connection) as ctx:
            launch(campaign)
        assert campaign.items.count() == n
        return len(ctx.captured_queries)

    # 10 items = 2 batches, 20 = 4: each batch costs the same few queries: the check's read before queueing,
    # the worker's read, and its committed batch (savepoint, claim renewed, items, history rows, release).
    small, large = queries_for(10), queries_for(20)
    per_batch = (large - small) / 2
    assert per_batch <= 7, (small, large)


def test_scope_by_application_sensitivity_and_department(cast):
    high = ApplicationFactory(name="Vault", sensitivity="high")
    EntitlementFactory(employee=cast.employee, application=high)
    EntitlementFactory(employee=cast.employee, application=cast.owner_app)  # low
    EntitlementFactory(employee=cast.other_employee, application=high)  # Finance

    campaign = make_campaign(min_sensitivity="medium", departments=[cast.employee.department])
    launch(campaign)

    assert list(campaign.items.values_list("employee_name", "application_name")) == [("Erin Employee", "Vault")]


def test_a_campaign_without_any_scope_is_refused(cast):
    with pytest.raises(ValidationError, match="no scope"):
        launch(make_campaign(scope_everything=False))
    assert not ReviewItem.objects.exists()


def test_items_without_a_reviewer_are_named_and_nothing_is_launched(cast):
    orphan = EmployeeFactory(first_name="Nora", last_name="Nomanager", manager=None)
    EntitlementFactory(employee=orphan, application=cast.app)
    EntitlementFactory(employee=cast.employee, application=cast.app)
    campaign = make_campaign(applications=[cast.app])

    plan = reviews.review_campaign_preview(campaign=campaign)
    assert (plan.total, plan.missing_count) == (2, 1)
    assert plan.missing == ["Nora Nomanager · GitHub (user): the person has no manager"]
    with pytest.raises(ValidationError, match="Nora Nomanager · GitHub") as exc:
        launch(campaign)
    assert "Nothing was launched" in str(exc.value)
    assert not ReviewItem.objects.exists()
    campaign.refresh_from_db()
    assert campaign.status == AccessReviewStatus.DRAFT


def test_it_may_choose_a_reviewer_for_items_without_one(cast):
    orphan = EmployeeFactory(first_name="Nora", last_name="Nomanager", manager=None)
    EntitlementFactory(employee=orphan, application=cast.app)
    EntitlementFactory(employee=cast.employee, application=cast.app)

    launch(make_campaign(applications=[cast.app]), fallback_reviewer=cast.head)

    assert dict(ReviewItem.objects.values_list("employee_name", "reviewer_kind")) == {
        "Nora Nomanager": ReviewerKind.CHOSEN,
        "Erin Employee": ReviewerKind.MANAGER,
    }
    assert ReviewItem.objects.get(employee=orphan).reviewer == cast.head


def test_nobody_reviews_their_own_access_it_falls_to_the_next_reviewer(cast):
    # The owner holds their own application: the owner rule gives it to the owner's manager.
    EntitlementFactory(employee=cast.owner, application=cast.owner_app)
    EntitlementFactory(employee=cast.employee, application=cast.owner_app)

    launch(make_campaign(applications=[cast.owner_app], reviewer_rule=ReviewerRule.OWNER))

    assert ReviewItem.objects.get(employee=cast.owner).reviewer == cast.head
    assert ReviewItem.objects.get(employee=cast.employee).reviewer == cast.owner
    # A fallback reviewer is never given their own access either.
    orphan = EmployeeFactory(manager=None, user=UserFactory())
    EntitlementFactory(employee=orphan, application=cast.app)
    with pytest.raises(ValidationError, match="nobody to review"):
        launch(make_campaign(applications=[cast.app]), fallback_reviewer=orphan)


def test_a_manager_who_left_or_has_no_login_passes_the_item_up_the_line(cast):
    cast.manager.status = EmployeeStatus.TERMINATED
    cast.manager.save()
    EntitlementFactory(employee=cast.employee, application=cast.app)

    launch(make_campaign(applications=[cast.app]))

    assert ReviewItem.objects.get().reviewer == cast.head


def test_suggestions_are_labelled_and_only_where_the_data_supports_one(cast):
    cast.employee.role = cast.manager.role = None
    from accounts.tests.factories import RoleFactory

    role = RoleFactory()
    role.birthrights.create(application=cast.free_app, access_level="user")
    cast.employee.role = role
    cast.employee.save()
    old = timezone.now() - datetime.timedelta(days=120)
    EntitlementFactory(employee=cast.employee, application=cast.free_app, last_used_at=old)  # birthright
    EntitlementFactory(employee=cast.employee, application=cast.app, last_used_at=old)  # unused 120 days
    EntitlementFactory(employee=cast.employee, application=cast.owner_app, last_used_at=None)  # no data
    EntitlementFactory(employee=cast.employee, application=cast.other_app, last_used_at=timezone.now())

    launch(make_campaign(departments=[cast.employee.department]))

    got = {i.application_name: (i.suggestion, i.suggestion_reason[:20]) for i in ReviewItem.objects.all()}
    assert got == {
        "Slack": ("keep", "Birthright of the pe"),
        "GitHub": ("revoke", "Not used for 90 days"),
        "Figma": ("", ""),
        "Payroll": ("", ""),
    }


def test_a_launched_campaign_cannot_be_launched_or_changed_again(cast):
    EntitlementFactory(employee=cast.employee, application=cast.app)
    campaign = launch(make_campaign(applications=[cast.app]))
    with pytest.raises(ValidationError, match="only a draft"):
        launch(campaign)
    campaign.name = "Renamed"
    with pytest.raises(ValidationError, match="frozen"):
        reviews.review_campaign_save(campaign=campaign, acting_user=None)
    assert ReviewItem.objects.count() == 1


def test_a_recurring_campaign_plans_its_successor_a_quarter_later(cast):
    EntitlementFactory(employee=cast.employee, application=cast.app)
    campaign = launch(
        make_campaign(
            applications=[cast.app], starts_on=datetime.date(2026, 11, 30), due_on=datetime.date(2026, 12, 31)
        )
    )
    successor = AccessReview.objects.get(previous=campaign)
    assert (successor.starts_on, successor.due_on) == (datetime.date(2027, 2, 28), datetime.date(2027, 3, 31))
    assert successor.status == AccessReviewStatus.DRAFT
    assert list(successor.applications.all()) == [cast.app]


# --- Decisions ---------------------------------------------------------------------------------------


@pytest.fixture
def review(cast, django_capture_on_commit_callbacks):
    """A launched campaign over GitHub: the employee's item (manager reviews) and the teammate's."""
    EntitlementFactory(employee=cast.employee, application=cast.app, level="write")
    EntitlementFactory(employee=cast.teammate, application=cast.app, level="read")
    campaign = launch(make_campaign(applications=[cast.app]))
    return campaign


def item_of(person) -> ReviewItem:
    return ReviewItem.objects.get(employee=person)


def test_keep_closes_the_item_with_who_when_and_history(cast, review):
    item = reviews.review_item_decide(
        item=item_of(cast.employee), decision="keep", comment="Still on the team.", acting_user=cast.manager.user
    )
    assert (item.state, item.decision, item.decided_by, item.comment) == (
        "kept",
        "keep",
        cast.manager.user,
        "Still on the team.",
    )
    assert item.trail[0]["by"] == "manager" and item.trail[0]["decision"] == "keep"
    assert item.history.first().history_user == cast.manager.user
    assert AuditEvent.objects.filter(action=AuditEvent.Action.REVIEW_DECIDED, target_id=str(item.pk)).exists()


def test_revoke_needs_a_comment_and_writes_nothing_without_one(cast, review):
    with pytest.raises(ValidationError, match="comment is required"):
        reviews.review_item_decide(item=item_of(cast.employee), decision="revoke", acting_user=cast.manager.user)
    assert item_of(cast.employee).state == ReviewItemState.OPEN


def test_change_level_must_name_another_level_of_the_application(cast, review):
    for level, message in (("admin", "has no level"), ("write", "at 'write' already")):
        with pytest.raises(ValidationError, match=message):
            reviews.review_item_decide(
                item=item_of(cast.employee), decision="change_level", new_level=level, acting_user=cast.manager.user
            )
    assert item_of(cast.employee).state == ReviewItemState.OPEN


def test_an_item_that_is_not_yours_is_refused(cast, review):
    for user in (cast.other_manager.user, cast.employee.user, cast.owner.user):
        with pytest.raises(PermissionDenied):
            reviews.review_item_decide(item=item_of(cast.teammate), decision="keep", acting_user=user)
    assert item_of(cast.teammate).state == ReviewItemState.OPEN


def test_a_delegate_decides_for_the_reviewer_but_never_their_own_access(cast, review):
    ApprovalDelegation.objects.create(
        delegator=cast.manager, delegate=cast.employee, starts_on=TODAY, ends_on=TODAY + datetime.timedelta(days=3)
    )
    mine = reviews.review_items_for_reviewer(cast.employee)
    assert list(mine) == [item_of(cast.teammate)]
    reviews.review_item_decide(item=item_of(cast.teammate), decision="keep", acting_user=cast.employee.user)
    with pytest.raises(PermissionDenied):
        reviews.review_item_decide(item=item_of(cast.employee), decision="keep", acting_user=cast.employee.user)


def test_manager_then_owner_hands_a_kept_item_to_the_owner(cast):
    EntitlementFactory(employee=cast.employee, application=cast.app)
    launch(make_campaign(applications=[cast.app], reviewer_rule=ReviewerRule.MANAGER_THEN_OWNER))

    item = reviews.review_item_decide(item=item_of(cast.employee), decision="keep", acting_user=cast.manager.user)

    assert (item.state, item.stage, item.reviewer, item.reviewer_kind) == ("open", 2, cast.owner, "owner")
    with pytest.raises(PermissionDenied):
        reviews.review_item_decide(item=item, decision="keep", acting_user=cast.manager.user)
    item = reviews.review_item_decide(item=item, decision="keep", acting_user=cast.owner.user)
    assert item.state == ReviewItemState.KEPT
    assert [step["stage"] for step in item.trail] == [1, 2]


def test_bulk_decision_decides_each_and_reports_the_rest(cast, review):
    ReviewItem.objects.filter(employee=cast.teammate).update(state=ReviewItemState.KEPT)
    result = reviews.review_items_decide_many(
        items=list(ReviewItem.objects.all()), decision="keep", comment="", acting_user=cast.manager.user
    )
    assert [i.employee for i in result["done"]] == [cast.employee]
    assert len(result["failed"]) == 1 and "decided already" in result["failed"][0][1]
    with pytest.raises(ValidationError, match="comment is required"):
        reviews.review_items_decide_many(items=[], decision="revoke", comment=" ", acting_user=cast.manager.user)


# --- Due date --------------------------------------------------------------------------------------


def after_due(campaign):
    return campaign.due_on + datetime.timedelta(days=1)


def test_unanswered_items_are_kept_by_the_keep_rule_once(cast, review):
    before = reviews.review_campaign_process_due(campaign=review, today=review.due_on)
    assert before["note"] == "not due"
    result = reviews.review_campaign_process_due(campaign=review, today=after_due(review))
    assert result["decided"] == 2
    assert set(ReviewItem.objects.values_list("state", "decided_by_rule")) == {("kept", True)}
    again = reviews.review_campaign_process_due(campaign=review, today=after_due(review))
    assert again["note"] == "nothing to do"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.REVIEW_DUE_APPLIED).count() == 1


def test_auto_revoke_over_the_cap_waits_for_it_to_confirm(cast, it_admin, django_capture_on_commit_callbacks):
    EntitlementFactory(employee=cast.employee, application=cast.app)
    EntitlementFactory(employee=cast.teammate, application=cast.app)
    campaign = launch(
        make_campaign(applications=[cast.app], unanswered_rule=UnansweredRule.REVOKE, auto_revoke_cap_percent=50)
    )
    reviews.review_item_decide(item=item_of(cast.teammate), decision="keep", acting_user=cast.manager.user)
    AccessReview.objects.filter(pk=campaign.pk).update(auto_revoke_cap_percent=0)

    blocked = reviews.review_campaign_process_due(campaign=campaign, today=after_due(campaign))

    assert blocked["blocked"] is True
    assert item_of(cast.employee).state == ReviewItemState.OPEN
    campaign.refresh_from_db()
    assert campaign.cap_blocked_at is not None and campaign.due_processed_at is None
    with django_capture_on_commit_callbacks(execute=True):
        done = reviews.review_campaign_confirm_over_cap(campaign=campaign, acting_user=it_admin)
    assert done["decided"] == 1
    item = item_of(cast.employee)
    assert (item.decision, item.decided_by_rule) == ("revoke", True)
    assert AuditEvent.objects.filter(action=AuditEvent.Action.REVIEW_CAP_CONFIRMED, actor=it_admin).exists()


def test_auto_revoke_within_the_cap_revokes_without_asking(cast, django_capture_on_commit_callbacks):
    EntitlementFactory(employee=cast.employee, application=cast.app)
    EntitlementFactory(employee=cast.teammate, application=cast.app)
    campaign = launch(
        make_campaign(applications=[cast.app], unanswered_rule=UnansweredRule.REVOKE, auto_revoke_cap_percent=50)
    )
    reviews.review_item_decide(item=item_of(cast.teammate), decision="keep", acting_user=cast.manager.user)
    with django_capture_on_commit_callbacks(execute=True):
        result = reviews.review_campaign_process_due(campaign=campaign, today=after_due(campaign))
    assert result["decided"] == 1 and "blocked" not in result
    assert item_of(cast.employee).decision == "revoke"


def test_escalation_sends_unanswered_items_to_the_reviewers_manager(cast):
    EntitlementFactory(employee=cast.employee, application=cast.app)
    campaign = launch(make_campaign(applications=[cast.app], unanswered_rule=UnansweredRule.ESCALATE))

    result = reviews.review_campaign_process_due(campaign=campaign, today=after_due(campaign))

    assert result["escalated"] == 1
    item = item_of(cast.employee)
    assert (item.reviewer, item.reviewer_kind, item.state) == (cast.head, "escalated", "open")
    assert list(reviews.review_items_for_reviewer(cast.head)) == [item]
    assert not reviews.review_items_for_reviewer(cast.manager).exists()


def test_reminders_go_out_once_per_reminder_day_to_each_reviewer(cast, review, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert reviews.review_campaigns_remind(today=review.due_on - datetime.timedelta(days=8)) == 0
        assert reviews.review_campaigns_remind(today=review.due_on - datetime.timedelta(days=7)) == 1
        assert reviews.review_campaigns_remind(today=review.due_on - datetime.timedelta(days=6)) == 0
        assert reviews.review_campaigns_remind(today=review.due_on - datetime.timedelta(days=1)) == 1
    emails = list(OutboundEmail.objects.order_by("pk"))
    assert len(emails) == 2
    assert emails[0].recipients == "manager@example.com" or "manager@example.com" in str(emails[0].recipients)
    assert "2 access review items due" in emails[0].subject


def test_reminders_reach_the_reviewers_delegates_once_and_leave_out_their_own_access(
    cast, review, django_capture_on_commit_callbacks
):
    seven_before = review.due_on - datetime.timedelta(days=7)
    # The teammate stands in for the manager that week (their own item is not theirs to decide); the other
    # manager's delegation ended the day before, and the owner's was cancelled: neither is reminded.
    ApprovalDelegation.objects.create(
        delegator=cast.manager, delegate=cast.teammate, starts_on=seven_before, ends_on=review.due_on
    )
    ApprovalDelegation.objects.create(
        delegator=cast.manager,
        delegate=cast.other_manager,
        starts_on=seven_before - datetime.timedelta(days=5),
        ends_on=seven_before - datetime.timedelta(days=1),
    )
    ApprovalDelegation.objects.create(
        delegator=cast.manager,
        delegate=cast.owner,
        starts_on=seven_before,
        ends_on=review.due_on,
        cancelled_at=timezone.now(),
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert reviews.review_campaigns_remind(today=seven_before) == 2
        assert reviews.review_campaigns_remind(today=seven_before) == 0  # exactly once
        assert reviews.review_campaigns_remind(today=review.due_on - datetime.timedelta(days=1)) == 2
    assert OutboundEmail.objects.count() == 4  # two reminder days, the manager and the delegate each
    to_delegate = OutboundEmail.objects.filter(recipients__contains="teammate@example.com").order_by("pk")
    assert [e.subject for e in to_delegate] == [
        f"Reminder: 1 access review item due {review.due_on:%-d %b %Y} (for Morgan Manager)"
    ] * 2
    body = to_delegate[0].body
    assert "Morgan Manager delegated their approvals to you until" in body and "/reviews/" in body
    assert not OutboundEmail.objects.filter(recipients__contains="other-manager@example.com").exists()
    assert not OutboundEmail.objects.filter(recipients__contains="owner@example.com").exists()


def test_the_hourly_run_is_idempotent_and_closes_a_finished_campaign(cast, review):
    for person in (cast.employee, cast.teammate):
        reviews.review_item_decide(item=item_of(person), decision="keep", acting_user=cast.manager.user)
    first = reviews.review_campaigns_hourly(today=after_due(review))
    second = reviews.review_campaigns_hourly(today=after_due(review))
    review.refresh_from_db()
    assert review.status == AccessReviewStatus.CLOSED
    assert first["closed"] == 1 and second["closed"] == 0
    assert AuditEvent.objects.filter(action=AuditEvent.Action.REVIEW_CLOSED).count() == 1


def test_progress_counts_each_state(cast, review):
    reviews.review_item_decide(item=item_of(cast.employee), decision="keep", acting_user=cast.manager.user)
    progress = reviews.review_progress(review)
    assert (progress["total"], progress["open"], progress["kept"], progress["percent"]) == (2, 1, 1, 50)


def test_open_items_follow_a_reviewer_who_leaves_and_a_holder_who_moves(cast, review):
    cast.manager.status = EmployeeStatus.TERMINATED
    cast.manager.save()
    assert reviews.review_items_follow_reviewers() == 2
    assert set(ReviewItem.objects.values_list("reviewer", flat=True)) == {cast.head.pk}
    assert reviews.review_items_follow_reviewers() == 0  # idempotent
    # The teammate moves under the other manager: their item goes to their new manager.
    cast.teammate.manager = cast.other_manager
    cast.teammate.save()
    assert reviews.review_items_follow_reviewers() == 1
    assert item_of(cast.teammate).reviewer == cast.other_manager
    assert item_of(cast.employee).reviewer == cast.head  # still nobody able below the head for Erin


def test_a_revoke_with_nobody_connected_to_the_hook_rolls_back(cast, review, monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from accounts.hooks import access_review_decided

    monkeypatch.setattr(access_review_decided, "_receivers", [])
    with pytest.raises(ImproperlyConfigured, match="access_review_decided"):
        reviews.review_item_decide(
            item=item_of(cast.employee), decision="revoke", comment="Gone.", acting_user=cast.manager.user
        )
    assert item_of(cast.employee).state == ReviewItemState.OPEN


def test_the_owner_stage_never_goes_back_to_the_stage_one_reviewer(cast):
    cast.app.owner = cast.manager  # the manager owns GitHub too: the owner stage goes up to the head
    cast.app.save()
    EntitlementFactory(employee=cast.employee, application=cast.app)
    launch(make_campaign(applications=[cast.app], reviewer_rule=ReviewerRule.MANAGER_THEN_OWNER))

    item = reviews.review_item_decide(item=item_of(cast.employee), decision="keep", acting_user=cast.manager.user)

    assert (item.stage, item.reviewer) == (2, cast.head)


def test_a_delegate_who_owns_the_application_does_not_sign_off_both_stages(cast):
    """The manager's delegate is the application's owner: their stage-one keep hands the owner stage to the
    next person up from the owner, never back to the same person."""
    ApprovalDelegation.objects.create(
        delegator=cast.manager, delegate=cast.owner, starts_on=TODAY, ends_on=TODAY + datetime.timedelta(days=3)
    )
    EntitlementFactory(employee=cast.teammate, application=cast.app)
    launch(make_campaign(applications=[cast.app], reviewer_rule=ReviewerRule.MANAGER_THEN_OWNER))

    item = reviews.review_item_decide(item=item_of(cast.teammate), decision="keep", acting_user=cast.owner.user)

    assert (item.stage, item.reviewer) == (2, cast.head)


def test_items_that_can_go_nowhere_do_not_hide_the_ones_after_them(cast, review):
    """One candidate at a time: the first item's holder lost their manager and nobody able is above the
    reviewer (the head has no login); the second's holder moved to another manager. The second moves."""
    first, second = ReviewItem.objects.order_by("pk")[:2]
    cast.head.user = None
    cast.head.save()
    stuck, mover = first.employee, second.employee
    stuck.manager = None
    stuck.save()
    mover.manager = cast.other_manager
    mover.save()

    assert reviews.review_items_follow_reviewers(limit=1) == 1
    assert ReviewItem.objects.get(pk=second.pk).reviewer == cast.other_manager
    assert ReviewItem.objects.get(pk=first.pk).reviewer == first.reviewer
