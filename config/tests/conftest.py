"""Fixtures of the cross-app tests: a real Chromium and its pages (`browser`, `new_page`), and for the
self-service pages an employee who holds access and hardware, and a stranger who does too."""

import datetime

import pytest

from accounts.models import EntitlementStatus
from accounts.tests.factories import (
    ApplicationFactory,
    DepartmentFactory,
    EmployeeFactory,
    EntitlementFactory,
    LocationFactory,
    UserFactory,
)
from assets.models import AssetCategory
from assets.services import asset_check_out
from assets.tests.factories import AssetModelFactory, HardwareAssetFactory
from portal.testing.browser import chromium_browser, page_opener


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module (see `portal.testing.browser`: skipped when Chromium is missing)."""
    with chromium_browser() as chromium:
        yield chromium


@pytest.fixture
def new_page(browser):
    """`new_page(viewport=DESKTOP)` opens a page in a fresh browser context (own cookies); closed after the test.

    The test fails when any page it opened reported a Content-Security-Policy violation.
    """
    with page_opener(browser) as open_page:
        yield open_page
        violations = list(open_page.csp_violations)
    assert not violations, "Content-Security-Policy violations:\n" + "\n".join(violations)


@pytest.fixture
def erin(db):
    """Erin, a signed-up employee with a manager, two applications and two devices (one without accepted terms)."""
    user = UserFactory(username="erin", first_name="Erin", last_name="Example")
    manager = EmployeeFactory(first_name="Morgan", last_name="Manager")
    employee = EmployeeFactory(
        user=user,
        first_name="Erin",
        last_name="Example",
        title="Data Analyst",
        department=DepartmentFactory(name="Finance"),
        location=LocationFactory(name="Berlin HQ", city="Berlin"),
        manager=manager,
    )
    EntitlementFactory(
        employee=employee,
        application=ApplicationFactory(name="Salesforce"),
        level="admin",
        expires_at=datetime.datetime(2027, 6, 30, tzinfo=datetime.UTC),
    )
    EntitlementFactory(employee=employee, application=ApplicationFactory(name="Slack"), level="user")
    EntitlementFactory(
        employee=employee,
        application=ApplicationFactory(name="Old CRM"),
        status=EntitlementStatus.REVOKED,
        revoked_at=datetime.datetime(2025, 6, 1, tzinfo=datetime.UTC),
    )
    laptop = HardwareAssetFactory(
        asset_tag="LT-0042", model=AssetModelFactory(manufacturer="Apple", name="MacBook Pro 14")
    )
    phone = HardwareAssetFactory(
        asset_tag="PH-0007",
        model=AssetModelFactory(manufacturer="Google", name="Pixel 9", category=AssetCategory.PHONE),
    )
    asset_check_out(asset=laptop, employee=employee, acting_user=None, terms_accepted=True)
    asset_check_out(asset=phone, employee=employee, acting_user=None, terms_accepted=False)
    return employee


@pytest.fixture
def stranger(db):
    """Another employee, with access and hardware Erin must never see."""
    employee = EmployeeFactory(user=UserFactory(username="sam"), first_name="Sam", last_name="Stranger")
    EntitlementFactory(employee=employee, application=ApplicationFactory(name="Payroll Secrets"), level="admin")
    asset = HardwareAssetFactory(
        asset_tag="SECRET-999", model=AssetModelFactory(manufacturer="Dell", name="Precision 5690")
    )
    asset_check_out(asset=asset, employee=employee, acting_user=None, terms_accepted=True)
    return employee
