"""End to end in a real Chromium: IT finds an employee in the admin, an employee signs in and sees their
hardware and access, a wrong password is explained, and home and login fit a phone and a desktop.

The browser comes from `portal.testing.browser` (skipped when Chromium is missing, unless
PORTAL_REQUIRE_BROWSER=1); screenshots go to test-artifacts/.
"""

import pytest

from portal.testing.browser import ARTIFACTS, DESKTOP, PHONE, no_horizontal_overflow, sign_in

pytestmark = pytest.mark.browser


def test_it_admin_finds_an_employee_in_the_admin(live_server, new_page, it_admin, erin, stranger, password):
    page = new_page()
    sign_in(page, f"{live_server.url}/admin/login/?next=/admin/", it_admin.username, password)
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
