"""The HR file import in a real Chromium at phone width: a refused file shows each reason on the page
(row, column, value, reason), then a corrected file is previewed and imported; nothing scrolls sideways."""

import pytest

from accounts.models import Employee
from accounts.tests.factories import DepartmentFactory, LocationFactory, RoleFactory
from offboarding.models import ChecklistKind, ChecklistRun
from portal.testing.browser import ARTIFACTS, PHONE, no_horizontal_overflow, sign_in_staff

pytestmark = pytest.mark.browser

HEADER = "Employee_Number,First Name ,last name,Work Email,Department,Location,Role,Start Date,Status\n"
GOOD = "E-9001,Grace,Hopper,grace.hopper@example.com,Engineering,Berlin HQ,Developer,2027-03-01,pre_hire\n"
BAD_PLACE = "E-9002,Alan,Turing,alan.turing@example.com,Engineering,Atlantis,Developer,2027-03-01,pre_hire\n"
BAD_DATE = "E-9003,Ada,Lovelace,ada.lovelace@example.com,Engineering,Berlin HQ,Developer,01/03/2027,pre_hire\n"


def _fits(page, name):
    scroll_width, inner_width = no_horizontal_overflow(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
    assert scroll_width <= inner_width, f"{name} scrolls sideways at {inner_width}px: {scroll_width}px"


def _upload(page, tmp_path, text):
    path = tmp_path / "hr.csv"
    path.write_text(text, encoding="utf-8")
    page.get_by_label("HR file").set_input_files(str(path))
    page.get_by_role("button", name="Check the file").click()


def test_it_fixes_a_refused_hr_file_and_imports_it_on_a_phone(live_server, new_page, it_admin, password, tmp_path):
    DepartmentFactory(code="ENG", name="Engineering")
    LocationFactory(code="BER-1", name="Berlin HQ")
    RoleFactory(code="dev", name="Developer")
    page = new_page(PHONE)
    url = f"{live_server.url}/admin/accounts/employee/import/"
    sign_in_staff(page, f"{live_server.url}/admin/login/?next=/admin/accounts/employee/import/", it_admin, password)
    assert page.url == url

    _upload(page, tmp_path, HEADER + GOOD + BAD_PLACE + BAD_DATE)
    alert = page.get_by_role("alert")
    assert "Nothing was written" in alert.inner_text()
    problems = page.locator(".hr-import-problem-list tbody tr")
    texts = [problems.nth(i).inner_text() for i in range(problems.count())]
    assert any(text.startswith("3") and "Atlantis" in text and "Berlin HQ" in text for text in texts), texts
    assert any(text.startswith("4") and "01/03/2027" in text for text in texts), texts  # never guessed
    assert all(problems.nth(i).is_visible() for i in range(problems.count()))
    _fits(page, "hr-import-refused-phone")
    assert not Employee.objects.filter(employee_number__startswith="E-900").exists()

    fixed = BAD_PLACE.replace("Atlantis", "BER-1") + BAD_DATE.replace("01/03/2027", "2027-03-01")
    _upload(page, tmp_path, HEADER + GOOD + fixed)
    page.wait_for_url("**/admin/accounts/employee/import/*/")
    assert "3 join runs" in page.locator("#content").inner_text()
    _fits(page, "hr-import-preview-phone")
    page.get_by_role("button", name="Import", exact=True).click()
    page.wait_for_load_state()
    imported = Employee.objects.filter(employee_number__startswith="E-900")
    assert set(imported.values_list("last_name", flat=True)) == {"Hopper", "Turing", "Lovelace"}
    assert ChecklistRun.objects.filter(kind=ChecklistKind.JOIN, employee__in=imported).count() == 3
    _fits(page, "hr-import-done-phone")
