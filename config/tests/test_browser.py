"""End to end in a real Chromium: IT finds an employee in the admin, an employee signs in and sees their
hardware and access, a wrong password is explained, and home and login fit a phone and a desktop.

The browser comes from `portal.testing.browser` (skipped when Chromium is missing, unless
PORTAL_REQUIRE_BROWSER=1); screenshots go to test-artifacts/.
"""

import contextlib

import pytest

from portal.testing.browser import ARTIFACTS, DESKTOP, PHONE, no_horizontal_overflow, sign_in, sign_in_staff

pytestmark = pytest.mark.browser


def test_it_admin_finds_an_employee_in_the_admin(live_server, new_page, it_admin, erin, stranger, password):
    page = new_page()
    sign_in_staff(page, f"{live_server.url}/admin/login/?next=/admin/", it_admin, password)
    assert page.url == f"{live_server.url}/admin/"

    page.goto(f"{live_server.url}/admin/accounts/employee/")
    page.locator("#searchbar").fill("Stranger")
    page.locator("#searchbar").press("Enter")
    page.wait_for_url("**/admin/accounts/employee/?q=Stranger*")
    results = page.locator("#result_list")
    assert "Sam" in results.inner_text()
    assert "Erin" not in results.inner_text()

    page.goto(f"{live_server.url}/admin/accounts/employee/?q={erin.employee_number}")
    assert "Example" in page.locator("#result_list").inner_text()
    page.screenshot(path=ARTIFACTS / "admin-employee-search.png", full_page=True)


def test_employee_signs_in_and_sees_hardware_and_access(live_server, new_page, erin, stranger, password):
    page = new_page()
    sign_in(page, f"{live_server.url}/", "erin", password)  # redirected to /login/?next=/
    assert page.url == f"{live_server.url}/"
    assert page.get_by_role("heading", name="Erin Example").is_visible()

    hardware = page.get_by_role("region", name="My hardware")
    assert hardware.get_by_text("LT-0042").is_visible()
    assert hardware.get_by_text("Apple MacBook Pro 14").is_visible()
    assert hardware.get_by_text("Not yet accepted").is_visible()
    access = page.get_by_role("region", name="My access")
    assert access.get_by_text("Salesforce").is_visible()
    assert access.get_by_text("Slack").is_visible()
    assert "SECRET-999" not in page.content()

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{live_server.url}/login/")
    assert page.get_by_text("You have signed out.").is_visible()


def test_wrong_password_shows_an_error(live_server, new_page, erin):
    page = new_page()
    sign_in(page, f"{live_server.url}/login/", "erin", "not-the-password")
    assert page.get_by_role("alert").inner_text().startswith("Please enter a correct username and password")


@pytest.mark.parametrize(("name", "viewport"), [("phone", PHONE), ("desktop", DESKTOP)])
def test_home_fits_the_screen(live_server, new_page, erin, password, name, viewport):
    page = new_page(viewport)
    sign_in(page, f"{live_server.url}/login/", "erin", password)
    assert page.get_by_role("heading", name="My hardware").is_visible()
    scroll_width, inner_width = no_horizontal_overflow(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"home-{name}.png", full_page=True)
    assert scroll_width <= inner_width, f"the page scrolls sideways at {inner_width}px: {scroll_width}px wide"
    if name == "phone":
        # Tables become one card per row; each value keeps its column name beside it.
        label = page.locator("td[data-label='Model']").first
        assert label.evaluate("el => getComputedStyle(el, '::before').content") == '"Model"'


def test_login_page_fits_a_phone(live_server, new_page):
    page = new_page(PHONE)
    page.goto(f"{live_server.url}/login/")
    scroll_width, inner_width = no_horizontal_overflow(page)
    page.screenshot(path=ARTIFACTS / "login-phone.png", full_page=True)
    assert scroll_width <= inner_width
    # The username field has focus on arrival, and focus is visible (an outline, not just a colour).
    focused = page.evaluate("[document.activeElement.id, getComputedStyle(document.activeElement).outlineStyle]")
    assert focused == ["id_username", "solid"]
    # Keyboard users can jump past the header: the skip link comes first and shows itself when focused.
    assert page.evaluate("document.querySelector('a[href], button, input:not([type=hidden])').textContent") == (
        "Skip to main content"
    )
    skip = page.get_by_role("link", name="Skip to main content")
    skip.focus()
    page.wait_for_timeout(300)  # its slide-in transition
    assert skip.bounding_box()["y"] >= 0
    assert skip.evaluate("el => getComputedStyle(el).outlineStyle") == "solid"


# --- Content-Security-Policy: the admin and self-service work under it -----------------------------
# `new_page` fails a test whose pages reported any violation (config/tests/conftest.py); every browser
# test above and in test_browser_selfservice.py runs under the policy too.


def test_the_admin_works_under_the_content_security_policy(live_server, new_page, auditor, it_admin, erin, password):
    """An auditor's list and export page work (the export page's "Select all" toggle is an inline
    handler, allowed by its hash), and IT's change form with its autocomplete widgets and the history
    page load without a violation."""
    page = new_page()
    sign_in_staff(page, f"{live_server.url}/admin/login/?next=/admin/", auditor, password)
    response = page.goto(f"{live_server.url}/admin/accounts/employee/")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert page.locator("#result_list").get_by_text("Erin").first.is_visible()
    page.goto(f"{live_server.url}/admin/accounts/employee/export/")
    toggle = page.locator("input[name='select-all-toggle']")
    field = page.locator("form input[type=checkbox]:not(.select-toggle)").first
    assert field.is_checked()
    toggle.uncheck()
    assert not field.is_checked(), "the inline onchange handler did not run: blocked by the policy?"

    admin_page = new_page()
    sign_in_staff(admin_page, f"{live_server.url}/admin/login/?next=/admin/", it_admin, password)
    admin_page.goto(f"{live_server.url}/admin/accounts/employee/{erin.pk}/change/")
    assert admin_page.get_by_role("heading", name="Change employee").is_visible()
    admin_page.locator(".select2-selection").first.click()  # an autocomplete widget opens and queries
    admin_page.wait_for_selector(".select2-results__option")
    admin_page.goto(f"{live_server.url}/admin/accounts/employee/{erin.pk}/history/")
    assert admin_page.get_by_role("heading").first.is_visible()


def test_a_violation_on_a_portal_page_is_seen_by_the_tests(live_server, browser):
    """The listener the browser tests rely on does catch a violation: an inline script injected into
    a real Portal page is refused by the policy and reported."""
    from portal.testing.browser import page_opener

    with page_opener(browser) as open_page:
        page = open_page()
        page.goto(f"{live_server.url}/login/")
        with contextlib.suppress(Exception):
            page.add_script_tag(content="window.injected = true;")
        page.wait_for_timeout(200)
        assert page.evaluate("window.injected === undefined")
        assert any("script-src" in v for v in open_page.csp_violations), open_page.csp_violations
