"""Self-service end to end in a real Chromium: an access request through its approval chain to a
provisioned account, a leaver returning hardware through the emailed link and IT receiving it,
and a manager delegating approvals to a colleague who then decides.

The browser comes from `portal.testing.browser` (skipped when Chromium is missing, unless
PORTAL_REQUIRE_BROWSER=1).
"""

import datetime
import re

import pytest
from django.utils import timezone

from portal.testing.browser import ARTIFACTS, PHONE, no_horizontal_overflow, sign_in, sign_in_staff

pytestmark = pytest.mark.browser


def _sign_in_to(page, live_server, path: str, user, password: str) -> None:
    """Open `path` signed out (redirected to the login page), sign in (staff: and the second factor), land there."""
    if user.is_staff:
        sign_in_staff(page, f"{live_server.url}{path}", user, password)
    else:
        sign_in(page, f"{live_server.url}{path}", user.username, password)
    assert page.url == f"{live_server.url}{path}", f"{user.username} did not land on {path}: {page.url}"


def _status_message(page):
    return page.get_by_role("status")


# --- An access request: employee asks, manager then owner approve, the account is set up ---------


def test_access_request_manager_then_owner_then_active(live_server, new_page, cast, webhook_server, password):
    from accounts.models import AccessRequest, AccessRequestStatus, EntitlementStatus

    cast.app.connector = "webhook"
    cast.app.connector_config = webhook_server.connector_config()
    cast.app.save()

    # The employee asks for write access, on a phone.
    employee_page = new_page(PHONE)
    _sign_in_to(employee_page, live_server, "/access/request/", cast.employee.user, password)
    scroll_width, inner_width = no_horizontal_overflow(employee_page)
    ARTIFACTS.mkdir(exist_ok=True)
    employee_page.screenshot(path=ARTIFACTS / "request-access-phone.png", full_page=True)
    assert scroll_width <= inner_width, f"the request form scrolls sideways at {inner_width}px: {scroll_width}px"
    employee_page.get_by_label("Application").select_option(label="GitHub (levels: read, write)")
    employee_page.get_by_label("Level").select_option("write")
    employee_page.get_by_label("Justification").fill("I review and merge pull requests for the portal.")
    employee_page.get_by_role("button", name="Send request").click()
    employee_page.wait_for_url(re.compile(r"/access/requests/\d+/$"))
    request = AccessRequest.objects.get(employee=cast.employee, application=cast.app)
    assert _status_message(employee_page).inner_text().strip() == (
        f"Request #{request.pk} for GitHub is sent; it now waits for Morgan Manager."
    )
    assert employee_page.get_by_role("heading", name=f"Request #{request.pk}: GitHub").is_visible()
    assert request.level == "write" and request.status == AccessRequestStatus.PENDING

    # The manager finds it in their inbox (phone width) and approves.
    manager_page = new_page(PHONE)
    _sign_in_to(manager_page, live_server, "/approvals/", cast.manager.user, password)
    review = manager_page.get_by_role("link", name="Review Erin Employee's request for GitHub")
    assert review.is_visible()
    manager_page.screenshot(path=ARTIFACTS / "approvals-inbox-phone.png", full_page=True)
    scroll_width, inner_width = no_horizontal_overflow(manager_page)
    assert scroll_width <= inner_width, f"the inbox scrolls sideways at {inner_width}px: {scroll_width}px"
    review.click()
    manager_page.wait_for_url(re.compile(r"/approvals/\d+/$"))
    assert manager_page.get_by_role("heading", name="Erin Employee asks for GitHub").is_visible()
    manager_page.get_by_label("Comment").fill("Fine by me.")
    manager_page.get_by_role("button", name="Approve").click()
    manager_page.wait_for_url(f"{live_server.url}/approvals/")
    assert "You approved Erin Employee's request for GitHub." in _status_message(manager_page).inner_text()
    assert manager_page.get_by_text("Nothing is waiting for your approval.").is_visible()
    first, second = request.steps.order_by("order")
    assert (first.status, first.decided_by) == ("approved", cast.manager.user)
    assert second.status == "pending"
    assert webhook_server.calls_for("provision") == []

    # The owner approves the second step.
    owner_page = new_page()
    _sign_in_to(owner_page, live_server, "/approvals/", cast.owner.user, password)
    owner_page.get_by_role("link", name="Review Erin Employee's request for GitHub").click()
    owner_page.wait_for_url(re.compile(r"/approvals/\d+/$"))
    owner_page.get_by_role("button", name="Approve").click()
    owner_page.wait_for_url(f"{live_server.url}/approvals/")
    assert "You approved Erin Employee's request for GitHub." in _status_message(owner_page).inner_text()

    # The approval enqueued the provisioning on commit; the queue runs inline (sync) in the server thread.
    request.refresh_from_db()
    assert request.status == AccessRequestStatus.APPROVED
    assert request.entitlement is not None and request.entitlement.status == EntitlementStatus.ACTIVE
    assert len(webhook_server.calls_for("provision")) == 1

    employee_page.goto(f"{live_server.url}/access/")
    row = employee_page.get_by_role("row").filter(has_text="GitHub")
    assert row.get_by_role("cell").nth(0).inner_text().strip() == "write"
    assert row.get_by_text("Active", exact=True).is_visible()


# --- A leaver returns two devices through the emailed link; IT receives them -------------------


def test_leaver_returns_two_devices_and_it_receives_them(
    live_server, new_page, cast, it_admin, password, mailoutbox, django_capture_on_commit_callbacks
):
    from accounts.models import EmployeeStatus
    from accounts.tests.factories import LocationFactory
    from assets.models import AssetStatus, HardwareAsset
    from assets.services import asset_check_out
    from assets.tests.factories import HardwareAssetFactory
    from offboarding.flows.leaver import employee_terminate
    from offboarding.models import HardwareReturn, ReturnMethod, ReturnStatus

    office = LocationFactory(name="Berlin HQ")
    laptop = HardwareAssetFactory(asset_tag="LT-2001")
    phone = HardwareAssetFactory(asset_tag="PH-2002")
    for asset in (laptop, phone):
        asset_check_out(asset=asset, employee=cast.employee, acting_user=None, terms_accepted=True)
    cast.employee.personal_email = "erin@home.example"
    cast.employee.save()

    with django_capture_on_commit_callbacks(execute=True):
        employee_terminate(employee=cast.employee, last_day=datetime.date.today(), acting_user=None, immediate=True)
    cast.employee.refresh_from_db()
    cast.employee.user.refresh_from_db()
    assert cast.employee.status == EmployeeStatus.TERMINATED
    assert not cast.employee.user.is_active
    returns = {r.asset.asset_tag: r for r in HardwareReturn.objects.filter(employee=cast.employee)}
    assert set(returns) == {"LT-2001", "PH-2002"}
    assert {r.status for r in returns.values()} == {ReturnStatus.OPEN}
    reminder = next(m for m in mailoutbox if "return your company hardware" in m.subject)
    assert "erin@home.example" in reminder.to
    link = next(line.strip() for line in reminder.body.splitlines() if "/returns/link/" in line)
    path = link[link.index("/returns/link/") :]

    # The leaver opens the link, signed out.
    page = new_page(PHONE)
    page.goto(f"{live_server.url}{path}")
    assert page.get_by_role("heading", name="Return your hardware, Erin").is_visible()
    progress = page.get_by_label(re.compile(r"of 2 items on the way"))
    assert progress.get_attribute("value") == "0"
    assert page.get_by_text("0 of 2 items on the way or back (0 received by IT)").is_visible()
    scroll_width, inner_width = no_horizontal_overflow(page)
    assert scroll_width <= inner_width, f"the returns page scrolls sideways at {inner_width}px: {scroll_width}px"

    def confirm(tag):
        # The visually hidden ": TAG" is positioned absolutely, so the accessible name reads "… way : TAG".
        return re.compile(rf"^Confirm it is on its way\s*: {tag}$")

    def item(tag):
        return page.get_by_role("article").filter(has=page.get_by_role("heading", name=re.compile(tag)))

    # A tracking number on a drop-off is refused with a clear message, and nothing changes.
    laptop_item = item("LT-2001")
    laptop_item.get_by_label("Drop-off", exact=True).check()
    laptop_item.get_by_label("Office (drop-off)").select_option(label="Berlin HQ")
    laptop_item.get_by_label("Day dropped off").fill(timezone.localdate().isoformat())
    laptop_item.get_by_label("Tracking number (courier)").fill("1Z999AA10123456784")
    laptop_item.get_by_role("button", name=confirm("LT-2001")).click()
    page.wait_for_load_state()
    assert page.get_by_text("LT-2001 is not confirmed yet: see the errors below.").is_visible()
    laptop_item = item("LT-2001")
    assert laptop_item.get_by_text(
        "A tracking number belongs to a courier return; leave it empty for a drop-off."
    ).is_visible()
    assert page.get_by_text("0 of 2 items on the way or back").is_visible()
    returns["LT-2001"].refresh_from_db()
    assert (returns["LT-2001"].status, returns["LT-2001"].tracking_number) == (ReturnStatus.OPEN, "")

    # Corrected: the laptop was dropped off at the office today.
    laptop_item.get_by_label("Tracking number (courier)").fill("")
    laptop_item.get_by_role("button", name=confirm("LT-2001")).click()
    page.wait_for_url(f"{live_server.url}{path}")
    assert "LT-2001 is marked dropped off" in _status_message(page).inner_text()
    assert page.get_by_text("1 of 2 items on the way or back").is_visible()

    # The phone goes by courier.
    phone_item = item("PH-2002")
    phone_item.get_by_label("Courier", exact=True).check()
    phone_item.get_by_label("Courier (courier)").fill("DHL")
    phone_item.get_by_label("Tracking number (courier)").fill("JD014600006281234567")
    phone_item.get_by_role("button", name=confirm("PH-2002")).click()
    page.wait_for_url(f"{live_server.url}{path}")
    assert "PH-2002 is marked on its way by courier" in _status_message(page).inner_text()
    assert page.get_by_text("2 of 2 items on the way or back (0 received by IT)").is_visible()
    assert page.get_by_label(re.compile(r"of 2 items on the way")).get_attribute("value") == "2"
    assert item("PH-2002").get_by_text("Sent with DHL, tracking number JD014600006281234567").is_visible()
    assert page.get_by_role("button", name=re.compile("Confirm it is on its way")).count() == 0
    page.screenshot(path=ARTIFACTS / "returns-link-phone.png", full_page=True)
    for tag, method in (("LT-2001", ReturnMethod.DROP_OFF), ("PH-2002", ReturnMethod.COURIER)):
        returns[tag].refresh_from_db()
        assert (returns[tag].status, returns[tag].method) == (ReturnStatus.SHIPPED, method)
    assert returns["LT-2001"].drop_off_location == office
    assert returns["LT-2001"].drop_off_date == timezone.localdate()

    # IT receives both from the admin changelist.
    admin = new_page()
    _sign_in_to(admin, live_server, "/admin/offboarding/hardwarereturn/", it_admin, password)
    for r in returns.values():
        admin.get_by_role("checkbox", name=f"Select this object for an action - {r}").check()
    admin.get_by_role("combobox", name="Action").select_option(label="Mark selected returns received (condition)")
    admin.get_by_role("button", name="Go").click()
    admin.wait_for_load_state()
    assert admin.get_by_role("heading", name="Mark received: 2 hardware returns").is_visible()
    admin.get_by_label("Condition").select_option("good")
    admin.get_by_role("button", name="Mark received").click()
    admin.wait_for_url(f"{live_server.url}/admin/offboarding/hardwarereturn/")
    assert admin.locator(".messagelist").get_by_text(re.compile("Received")).first.is_visible()

    for r in returns.values():
        r.refresh_from_db()
        assert (r.status, r.condition, r.received_by) == (ReturnStatus.RECEIVED, "good", it_admin)
    assert set(HardwareAsset.objects.filter(pk__in=[laptop.pk, phone.pk]).values_list("status", flat=True)) == {
        AssetStatus.IN_STOCK
    }

    page.reload()
    assert page.get_by_text("2 of 2 items on the way or back (2 received by IT)").is_visible()


# --- Delegation: the manager is away, a teammate decides for them ------------------------------


def test_manager_delegates_and_delegate_approves(live_server, new_page, cast, password):
    from accounts.models import ApprovalDelegation
    from accounts.services import access_requests

    today = timezone.localdate()
    last_day = today + datetime.timedelta(days=7)
    manager_page = new_page()
    _sign_in_to(manager_page, live_server, "/approvals/delegation/", cast.manager.user, password)
    manager_page.get_by_label("Colleague (work email)").fill("teammate@example.com")
    assert manager_page.get_by_label("First day").input_value() == today.isoformat()
    manager_page.get_by_label("Last day").fill(last_day.isoformat())
    manager_page.get_by_label("Reason").fill("Holiday")
    manager_page.get_by_role("button", name="Delegate", exact=True).click()
    manager_page.wait_for_url(f"{live_server.url}/approvals/delegation/")
    assert _status_message(manager_page).inner_text().strip() == (
        f"Tom Teammate decides your approvals from {today:%d %b %Y} to {last_day:%d %b %Y}."
    )
    assert manager_page.get_by_role("button", name="Cancel the delegation to Tom Teammate").is_visible()
    delegation = ApprovalDelegation.objects.get()
    assert (delegation.delegator, delegation.delegate) == (cast.manager, cast.teammate)
    assert (delegation.starts_on, delegation.ends_on) == (today, last_day)

    request = access_requests.access_request_create(
        employee=cast.employee, application=cast.app, level="read", justification="x", acting_user=cast.employee.user
    )
    step = request.steps.get(order=1)
    assert step.approver == cast.manager and step.status == "pending"

    teammate_page = new_page()
    _sign_in_to(teammate_page, live_server, "/approvals/", cast.teammate.user, password)
    row = teammate_page.get_by_role("row").filter(has_text="Erin Employee")
    assert row.get_by_text("(for Morgan Manager)").is_visible()
    row.get_by_role("link", name="Review Erin Employee's request for GitHub").click()
    teammate_page.wait_for_url(f"{live_server.url}/approvals/{step.pk}/")
    assert teammate_page.get_by_text("You decide on behalf of Morgan Manager (delegated to you).").is_visible()
    teammate_page.get_by_role("button", name="Approve").click()
    teammate_page.wait_for_url(f"{live_server.url}/approvals/")
    assert "You approved Erin Employee's request for GitHub." in _status_message(teammate_page).inner_text()

    step.refresh_from_db()
    assert (step.status, step.decided_by) == ("approved", cast.teammate.user)
    assert request.steps.get(order=2).status == "pending"  # the owner's step comes next


# --- The other pages: hardware terms, own tasks, the team and the owner's view ------------------


def test_employee_accepts_terms_and_completes_a_task_manager_asks_it_to_offboard_owner_sees_holders(
    live_server, new_page, cast, password
):
    from accounts.tests.factories import EntitlementFactory
    from assets.models import AssetCheckout
    from assets.services import asset_check_out
    from assets.tests.factories import HardwareAssetFactory
    from offboarding.engine import run_start, task_add
    from offboarding.models import ChangeRequest, Task, TaskStatus

    laptop = HardwareAssetFactory(asset_tag="LT-7001")
    asset_check_out(asset=laptop, employee=cast.employee, acting_user=None, terms_accepted=False)
    run = run_start(employee=cast.employee, kind="join", event_date=timezone.localdate(), acting_user=None)
    task_add(
        run=run,
        key="handbook",
        title="Read the handbook",
        assignee_type="employee",
        assignee=cast.employee,
        knowledge_url="https://kb.example.com/handbook",
    )
    EntitlementFactory(employee=cast.employee, application=cast.app, level="write")

    # The employee accepts the terms of the new laptop and marks the onboarding task done, on a phone.
    page = new_page(PHONE)
    _sign_in_to(page, live_server, "/hardware/", cast.employee.user, password)
    page.get_by_role("button", name=re.compile("Accept the terms")).click()
    assert "you accepted the terms for LT-7001" in _status_message(page).inner_text()
    assert AssetCheckout.objects.get(asset=laptop).terms_accepted_at is not None
    page.goto(f"{live_server.url}/tasks/")
    assert page.get_by_role("link", name="How to do it (knowledge base)").get_attribute("href") == (
        "https://kb.example.com/handbook"
    )
    page.get_by_label("Note (optional)").fill("Read it twice.")
    page.get_by_role("button", name=re.compile("Mark done")).click()
    assert "Done: “Read the handbook”" in _status_message(page).inner_text()
    assert Task.objects.get(run=run, key="handbook").status == TaskStatus.DONE
    assert page.get_by_text("No tasks are waiting for you.").is_visible()

    # The manager finds Erin on the team page and asks IT to off-board her; a past day is refused first.
    manager_page = new_page(PHONE)
    _sign_in_to(manager_page, live_server, "/team/", cast.manager.user, password)
    scroll_width, inner_width = no_horizontal_overflow(manager_page)
    assert scroll_width <= inner_width, f"the team page scrolls sideways at {inner_width}px: {scroll_width}px"
    manager_page.get_by_role("link", name="Erin Employee").click()
    assert manager_page.get_by_role("region", name="Hardware").get_by_text("LT-7001").is_visible()
    manager_page.get_by_role("link", name="Ask IT to off-board").click()
    manager_page.get_by_label("Last day of work").fill("2001-01-01")
    manager_page.get_by_label("Reason").fill("Resigned; last day agreed with HR.")
    manager_page.get_by_role("button", name="Send to IT").click()
    assert manager_page.get_by_role("alert").is_visible()
    assert "is in the past" in manager_page.content()
    assert not ChangeRequest.objects.exists()
    last_day = timezone.localdate() + datetime.timedelta(days=14)
    manager_page.get_by_label("Last day of work").fill(last_day.isoformat())
    manager_page.get_by_role("button", name="Send to IT").click()
    assert "is with IT" in _status_message(manager_page).inner_text()
    assert ChangeRequest.objects.get().effective_date == last_day

    # The owner sees who holds GitHub, with level and source.
    owner_page = new_page()
    _sign_in_to(owner_page, live_server, "/owner/", cast.owner.user, password)
    owner_page.get_by_role("link", name="GitHub").click()
    holders = owner_page.get_by_role("table")
    assert "Erin Employee" in holders.inner_text() and "write" in holders.inner_text()


# --- An access review on a phone: the manager keeps one item in bulk and revokes another -------------


def test_manager_reviews_access_on_a_phone(live_server, new_page, cast, password):
    from accounts.models import AccessReview, ReviewItem
    from accounts.services import reviews
    from accounts.tests.factories import EntitlementFactory

    EntitlementFactory(employee=cast.employee, application=cast.app, level="write")
    EntitlementFactory(employee=cast.teammate, application=cast.app, level="read")
    today = timezone.localdate()
    campaign = reviews.review_campaign_save(
        campaign=AccessReview(name="Q1 GitHub", starts_on=today, due_on=today + datetime.timedelta(days=7)),
        acting_user=None,
    )
    campaign.applications.set([cast.app])
    reviews.review_campaign_launch(campaign=campaign, acting_user=None)
    teammate_item = ReviewItem.objects.get(employee=cast.teammate)

    page = new_page(PHONE)
    _sign_in_to(page, live_server, "/reviews/", cast.manager.user, password)
    scroll, inner = no_horizontal_overflow(page)
    page.screenshot(path=ARTIFACTS / "reviews-phone.png", full_page=True)
    assert scroll <= inner, f"the reviews page scrolls sideways on a phone ({scroll} > {inner})"
    page.get_by_label("Select Tom Teammate · GitHub (read)").check()
    page.get_by_label("Keep").check()
    page.get_by_role("button", name="Apply the decision").click()
    page.wait_for_load_state()
    assert "You kept 1 item." in _status_message(page).inner_text()
    teammate_item.refresh_from_db()
    assert teammate_item.state == "kept"

    page.get_by_role("link", name="Decide on Erin Employee · GitHub (write)").click()
    page.get_by_label("Revoke").check()
    page.get_by_role("button", name="Record the decision").click()
    assert page.get_by_text("a comment is required").is_visible()
    page.get_by_label("Comment").fill("Moved to another team.")
    page.get_by_label("Revoke").check()
    page.get_by_role("button", name="Record the decision").click()
    page.wait_for_url(f"{live_server.url}/reviews/")
    assert "You revoked Erin Employee · GitHub (write)." in _status_message(page).inner_text()
    assert ReviewItem.objects.get(employee=cast.employee).decision == "revoke"
