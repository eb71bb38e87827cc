"""Access reviews in self-service (the reviewer's page, one item, bulk decisions) and in the admin (launch with
its confirm step, the evidence page and its CSV and XLSX exports)."""

import csv
import datetime
import io

import openpyxl
import pytest
from django.urls import reverse
from django.utils import timezone

from accounts import tasks
from accounts.models import AccessReview, ReviewItem, ReviewItemState
from accounts.services import reviews
from accounts.tests.factories import ApplicationFactory, EmployeeFactory, EntitlementFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign(cast):
    """GitHub for the employee (unused for 120 days) and the teammate, Figma for the teammate; the manager reviews."""
    old = timezone.now() - datetime.timedelta(days=120)
    EntitlementFactory(employee=cast.employee, application=cast.app, level="write", last_used_at=old)
    EntitlementFactory(employee=cast.teammate, application=cast.app, level="read")
    EntitlementFactory(employee=cast.teammate, application=cast.owner_app)
    EntitlementFactory(employee=cast.other_employee, application=cast.app)  # Olga reviews this one
    today = timezone.localdate()
    campaign = reviews.review_campaign_save(
        campaign=AccessReview(
            name="Q1 review", starts_on=today, due_on=today + datetime.timedelta(days=10), scope_everything=True
        ),
        acting_user=None,
    )
    return reviews.review_campaign_launch(campaign=campaign, acting_user=None)


def item(person, app) -> ReviewItem:
    return ReviewItem.objects.get(employee=person, application=app)


def test_the_reviewer_sees_only_their_items_with_labelled_suggestions(client, cast, campaign):
    client.force_login(cast.manager.user)
    page = client.get(reverse("access:reviews")).content.decode()
    assert "Erin Employee" in page and "Tom Teammate" in page
    assert "Oscar Otheremployee" not in page
    assert "Suggestion: revoke" in page and "Not used for 90 days" in page
    assert 'data-label="Application"' in page  # the table stacks into labelled rows at phone width


def test_filters_narrow_the_list_and_junk_filters_are_ignored(client, cast, campaign):
    client.force_login(cast.manager.user)
    response = client.get(reverse("access:reviews"), {"application": cast.owner_app.pk})
    assert [i.application_name for i in response.context["items"]] == ["Figma"]
    response = client.get(reverse("access:reviews"), {"suggestion": "revoke"})
    assert [i.employee_name for i in response.context["items"]] == ["Erin Employee"]
    response = client.get(reverse("access:reviews"), {"q": "tom"})
    assert {i.employee_name for i in response.context["items"]} == {"Tom Teammate"}
    junk = client.get(reverse("access:reviews"), {"campaign": "x'; --", "application": "²", "page": "zz"})
    assert junk.status_code == 200 and len(junk.context["items"]) == 3


def test_home_shows_the_items_under_what_needs_you(client, cast, campaign):
    client.force_login(cast.manager.user)
    page = client.get(reverse("home")).content.decode()
    assert "3 access review items to answer" in page


def test_deciding_an_item_that_is_not_yours_is_404_and_changes_nothing(client, cast, campaign):
    theirs = item(cast.other_employee, cast.app)
    client.force_login(cast.manager.user)
    url = reverse("access:review_item", args=[theirs.pk])
    assert client.get(url).status_code == 404
    assert client.post(url, {"decision": "keep"}).status_code == 404
    # Nor may the holder decide their own item.
    client.force_login(cast.employee.user)
    own = item(cast.employee, cast.app)
    assert client.post(reverse("access:review_item", args=[own.pk]), {"decision": "keep"}).status_code == 404
    assert set(ReviewItem.objects.values_list("state", flat=True)) == {ReviewItemState.OPEN}


def test_revoking_without_a_comment_is_refused_on_the_form(client, cast, campaign):
    client.force_login(cast.manager.user)
    target = item(cast.employee, cast.app)
    response = client.post(reverse("access:review_item", args=[target.pk]), {"decision": "revoke", "comment": " "})
    assert response.status_code == 200
    assert "a comment is required" in response.content.decode()
    target.refresh_from_db()
    assert target.state == ReviewItemState.OPEN


def test_keeping_and_changing_a_level_from_the_item_page(client, cast, campaign, django_capture_on_commit_callbacks):
    client.force_login(cast.manager.user)
    keep = item(cast.teammate, cast.owner_app)
    response = client.post(reverse("access:review_item", args=[keep.pk]), {"decision": "keep", "comment": ""})
    assert response.status_code == 302
    keep.refresh_from_db()
    assert (keep.state, keep.decided_by) == (ReviewItemState.KEPT, cast.manager.user)
    lower = item(cast.employee, cast.app)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("access:review_item", args=[lower.pk]),
            {"decision": "change_level", "new_level": "read", "comment": "Read is enough."},
        )
    assert response.status_code == 302
    lower.refresh_from_db()
    assert (lower.decision, lower.new_level, lower.state) == ("change_level", "read", ReviewItemState.APPLYING)


def test_bulk_keep_on_the_filtered_selection_decides_only_what_the_filters_show(client, cast, campaign):
    client.force_login(cast.manager.user)
    response = client.post(
        reverse("access:reviews_bulk"),
        {"decision": "keep", "comment": "", "scope": "filtered", "filters": f"application={cast.app.pk}"},
    )
    assert response.status_code == 302
    states = {(i.employee_name, i.application_name): i.state for i in ReviewItem.objects.all()}
    assert states == {
        ("Erin Employee", "GitHub"): "kept",
        ("Tom Teammate", "GitHub"): "kept",
        ("Tom Teammate", "Figma"): "open",
        ("Oscar Otheremployee", "GitHub"): "open",  # not the manager's
    }


def test_bulk_on_ticked_items_ignores_ids_that_are_not_yours(client, cast, campaign):
    client.force_login(cast.manager.user)
    mine, theirs = item(cast.teammate, cast.owner_app), item(cast.other_employee, cast.app)
    client.post(
        reverse("access:reviews_bulk"),
        {"decision": "keep", "scope": "selected", "items": [mine.pk, theirs.pk, "junk"]},
    )
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.state, theirs.state) == ("kept", "open")


def test_bulk_revoke_without_a_comment_changes_nothing(client, cast, campaign):
    client.force_login(cast.manager.user)
    response = client.post(
        reverse("access:reviews_bulk"), {"decision": "revoke", "comment": "", "scope": "filtered", "filters": ""}
    )
    assert response.status_code == 302
    assert set(ReviewItem.objects.values_list("state", flat=True)) == {"open"}
    follow = client.get(response["Location"]).content.decode()
    assert "a comment is required" in follow


# --- Admin: launch with a confirm step, evidence ----------------------------------------------------


def test_launch_action_names_items_without_a_reviewer_before_launching(
    client, cast, it_admin, django_capture_on_commit_callbacks
):
    orphan = EmployeeFactory(first_name="Nora", last_name="Nomanager", manager=None)
    EntitlementFactory(employee=orphan, application=cast.app)
    EntitlementFactory(employee=cast.employee, application=cast.app)
    today = timezone.localdate()
    campaign = reviews.review_campaign_save(
        campaign=AccessReview(
            name="Q2", starts_on=today, due_on=today + datetime.timedelta(days=7), scope_everything=True
        ),
        acting_user=it_admin,
    )
    client.force_login(it_admin)
    url = reverse("admin:accounts_accessreview_changelist")
    data = {"action": "launch_campaigns", "_selected_action": [campaign.pk]}

    page = client.post(url, data).content.decode()
    assert "1 without a reviewer: Nora Nomanager · GitHub (user): the person has no manager" in page

    refused = client.post(url, {**data, "apply": "1", "fallback_reviewer": ""}, follow=True).content.decode()
    assert "would have nobody to review" in refused
    assert not ReviewItem.objects.exists()

    with django_capture_on_commit_callbacks() as callbacks:
        done = client.post(url, {**data, "apply": "1", "fallback_reviewer": "head@example.com"}, follow=True)
    assert "being frozen in the background" in done.content.decode()
    assert [c.__qualname__ for c in callbacks] == ["enqueue_on_commit(accounts.tasks.access_review_launch)"]
    campaign.refresh_from_db()
    assert campaign.status == "launching" and campaign.item_count == 2 and not ReviewItem.objects.exists()

    # The campaign's page shows the launch's progress and refreshes itself until the worker is done.
    change = reverse("admin:accounts_accessreview_change", args=[campaign.pk])
    page = client.get(change).content.decode()
    assert "0 of 2 items frozen" in page and '<meta http-equiv="refresh"' in page
    assert 'id="review-launch-progress" max="2" value="0"' in page

    assert tasks.access_review_launch(campaign.pk) == "launched"
    campaign.refresh_from_db()
    assert campaign.status == "active" and campaign.item_count == 2
    assert ReviewItem.objects.get(employee=orphan).reviewer == cast.head
    page = client.get(change).content.decode()
    assert "items frozen" not in page and '<meta http-equiv="refresh"' not in page


def test_the_campaign_page_says_how_to_resume_a_launch_whose_worker_was_lost(client, cast, it_admin):
    EntitlementFactory(employee=cast.employee, application=cast.app)
    today = timezone.localdate()
    campaign = reviews.review_campaign_save(
        campaign=AccessReview(name="Q2", starts_on=today, due_on=today + datetime.timedelta(days=7)),
        acting_user=it_admin,
    )
    campaign.applications.set([cast.app])
    reviews.review_campaign_launch_queue(campaign=campaign, acting_user=it_admin)
    old = timezone.now() - reviews.LAUNCH_STALE - datetime.timedelta(minutes=1)
    AccessReview.objects.filter(pk=campaign.pk).update(launch_heartbeat_at=old)
    client.force_login(it_admin)

    page = client.get(reverse("admin:accounts_accessreview_change", args=[campaign.pk])).content.decode()
    assert "launch it again: it resumes where it stopped" in page and '<meta http-equiv="refresh"' not in page
    listing = client.get(reverse("admin:accounts_accessreview_changelist")).content.decode()
    assert "launching: 0 of 1 items frozen" in listing


def test_evidence_page_and_exports_for_the_auditor_are_formula_safe(client, cast, auditor, campaign):
    sneaky = EmployeeFactory(first_name="=HYPERLINK(1)", last_name="X", manager=cast.manager)
    EntitlementFactory(employee=sneaky, application=ApplicationFactory(name="@Tool"))
    today = timezone.localdate()
    second = reviews.review_campaign_save(
        campaign=AccessReview(
            name="Q3", starts_on=today, due_on=today + datetime.timedelta(days=7), scope_everything=True
        ),
        acting_user=None,
    )
    reviews.review_campaign_launch(campaign=second, acting_user=None)
    target = ReviewItem.objects.get(campaign=second, employee=sneaky)
    reviews.review_item_decide(item=target, decision="keep", comment="-1+1", acting_user=cast.manager.user)
    client.force_login(auditor)

    page = client.get(reverse("admin:accounts_accessreview_evidence", args=[second.pk]))
    assert page.status_code == 200
    assert "<progress" in page.content.decode() and "@media print" in page.content.decode()

    csv_bytes = client.get(reverse("admin:accounts_accessreview_evidence_export", args=[second.pk, "csv"])).content
    rows = list(csv.DictReader(io.StringIO(csv_bytes.decode("utf-8-sig"))))
    row = next(r for r in rows if r["application_name"] == "'@Tool")
    assert row["employee_name"] == "'=HYPERLINK(1) X"
    assert (row["decision"], row["decided_by"], row["comment"]) == ("keep", "manager", "'-1+1")

    xlsx = client.get(reverse("admin:accounts_accessreview_evidence_export", args=[second.pk, "xlsx"])).content
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx)).active
    values = [cell.value for row in sheet.iter_rows() for cell in row]
    assert "'=HYPERLINK(1) X" in values and not any(isinstance(v, str) and v.startswith("=") for v in values)
    assert (
        client.get(reverse("admin:accounts_accessreview_evidence_export", args=[second.pk, "pdf"])).status_code == 404
    )


def test_evidence_is_not_for_people_without_the_view_permission(client, cast, campaign):
    client.force_login(cast.manager.user)
    response = client.get(reverse("admin:accounts_accessreview_evidence", args=[campaign.pk]))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_a_comment_over_the_limit_is_refused_with_the_limit_and_nothing_written(client, cast, campaign):
    client.force_login(cast.manager.user)
    target = item(cast.employee, cast.app)
    response = client.post(
        reverse("access:review_item", args=[target.pk]), {"decision": "revoke", "comment": "x" * 200_000}
    )
    assert response.status_code == 200
    assert "at most 2000 characters" in response.content.decode()
    target.refresh_from_db()
    assert (target.state, target.comment) == (ReviewItemState.OPEN, "")
