"""End to end in a real Chromium: an auditor reads the audit log as sentences, narrows it by a date
range typed in the sidebar (other filters kept), and opens an event to see the before and after."""

import datetime

import pytest
from django.utils import timezone

from accounts.services.entitlements import entitlement_grant, entitlement_revoke
from accounts.tests.factories import ApplicationFactory, EmployeeFactory, RoleFactory
from portal.testing.browser import ARTIFACTS, PHONE, no_horizontal_overflow, sign_in_staff

pytestmark = pytest.mark.browser


@pytest.fixture
def history(it_admin):
    EmployeeFactory(first_name="Maria", last_name="Keller", user=it_admin)
    jan = EmployeeFactory(first_name="Jan", last_name="Vogel", role=RoleFactory())
    github = ApplicationFactory(name="GitHub", access_levels=["read", "write"])
    entitlement = entitlement_grant(employee=jan, application=github, level="write", acting_user=it_admin)
    entitlement_revoke(entitlement=entitlement, acting_user=it_admin, reason="no longer needed")
    return entitlement


def test_an_auditor_reads_sentences_filters_by_dates_and_sees_before_and_after(
    live_server, new_page, auditor, password, history
):
    page = new_page()
    sign_in_staff(page, f"{live_server.url}/admin/login/?next=/admin/portal/auditevent/", auditor, password)
    page.wait_for_url("**/admin/portal/auditevent/**")
    results = page.locator("#result_list")
    assert "Maria Keller revoked GitHub from Jan Vogel — no longer needed" in results.inner_text()

    # A date range, with the event-type filter kept: today shows both events of the type, tomorrow none.
    page.goto(f"{live_server.url}/admin/portal/auditevent/?action__exact=revoke")
    today = timezone.localdate()
    page.get_by_label("From", exact=True).fill(today.isoformat())
    page.get_by_label("To", exact=True).fill(today.isoformat())
    page.get_by_role("button", name="Show these dates").click()
    page.wait_for_url("**created_at__since=*")
    assert "action__exact=revoke" in page.url
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1 and "revoked GitHub" in rows.first.inner_text()
    page.get_by_label("From", exact=True).fill((today + datetime.timedelta(days=1)).isoformat())
    page.get_by_label("To", exact=True).fill((today + datetime.timedelta(days=1)).isoformat())
    page.get_by_role("button", name="Show these dates").click()
    page.wait_for_load_state()
    assert page.locator("#result_list").count() == 0  # "0 audit events"

    # The event's page: the revocation's before and after, from the entitlement's history.
    page.goto(f"{live_server.url}/admin/portal/auditevent/?action__exact=revoke")
    page.locator("#result_list tbody tr th a").first.click()
    page.wait_for_load_state()
    diff = page.locator("table.audit-diff")
    assert diff.is_visible()
    text = diff.inner_text()
    assert "Active" in text and "Revoked" in text
    page.screenshot(path=ARTIFACTS / "admin-audit-event.png", full_page=True)

    phone = new_page(viewport=PHONE)
    sign_in_staff(phone, f"{live_server.url}/admin/login/?next=/admin/portal/auditevent/", auditor, password)
    phone.wait_for_url("**/admin/portal/auditevent/**")
    width, window = no_horizontal_overflow(phone)
    phone.screenshot(path=ARTIFACTS / "admin-audit-phone.png", full_page=True)
    assert width <= window, f"the audit list scrolls sideways at phone width: {width} > {window}"
