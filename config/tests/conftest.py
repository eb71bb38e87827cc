"""Fixtures for the self-service pages: an employee who holds access and hardware, and a stranger who does too."""

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


def give_access(employee, *, count: int, prefix: str = "App") -> list:
    """`count` active entitlements for `employee`, to applications named `<prefix> 1..count`."""
    return [
        EntitlementFactory(employee=employee, application=ApplicationFactory(name=f"{prefix} {employee.pk}-{i}"))
        for i in range(1, count + 1)
    ]


def give_hardware(employee, *, count: int, terms_accepted: bool = True, tag_prefix: str = "HW") -> list:
    """`count` assets checked out to `employee` through the service, as IT would."""
    assets = []
    for i in range(1, count + 1):
        asset = HardwareAssetFactory(asset_tag=f"{tag_prefix}-{employee.pk}-{i:03d}")
        asset_check_out(asset=asset, employee=employee, acting_user=None, terms_accepted=terms_accepted)
        assets.append(asset)
    return assets


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
