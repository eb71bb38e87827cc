"""Fixtures for assets' tests: an IT user, two employees and a laptop."""

import pytest

from accounts.tests.factories import EmployeeFactory, UserFactory
from assets.tests.factories import HardwareAssetFactory


@pytest.fixture
def admin_user(db):
    return UserFactory(username="ada-admin")


@pytest.fixture
def alice(db):
    return EmployeeFactory(first_name="Alice", last_name="Able", employee_number="E100")


@pytest.fixture
def bob(db):
    return EmployeeFactory(first_name="Bob", last_name="Baker", employee_number="E200")


@pytest.fixture
def laptop(db):
    return HardwareAssetFactory(asset_tag="LT-0001")
