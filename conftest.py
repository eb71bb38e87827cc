"""Shared pytest fixtures: users in each audience, with their groups."""

import pytest

from accounts.tests.factories import DEMO_TEST_PASSWORD, EmployeeFactory, UserFactory


@pytest.fixture
def password():
    return DEMO_TEST_PASSWORD


@pytest.fixture
def groups(db):
    """The standard groups with their permissions (IT admin, IT helpdesk, auditor)."""
    from portal.groups import groups_sync

    return groups_sync()


def _staff(username, group_name, groups):
    user = UserFactory(username=username, is_staff=True)
    user.groups.add(groups[group_name])
    return user


@pytest.fixture
def it_admin(groups):
    return _staff("it-admin", "IT admin", groups)


@pytest.fixture
def helpdesk(groups):
    return _staff("helpdesk", "IT helpdesk", groups)


@pytest.fixture
def auditor(groups):
    return _staff("auditor", "Auditor", groups)


@pytest.fixture
def employee_user(db):
    """A plain employee with a login (no staff access)."""
    user = UserFactory(username="employee")
    EmployeeFactory(user=user, first_name="Erin", last_name="Employee", work_email="erin@example.com")
    return user
