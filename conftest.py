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


# --- Real servers on 127.0.0.1 for connector tests (see portal.testing) ----------------------------


@pytest.fixture(scope="session")
def ldap_server():
    """One throwaway OpenLDAP slapd for the whole run: a `portal.testing.ldap_server.LdapServer`.

    Skipped, with the reason, when slapd is not installed, unless PORTAL_REQUIRE_LDAP=1 (CI):
    then a missing slapd fails. Tests share the directory: use `ldap_directory` to start empty.
    """
    import os

    from portal.testing.ldap_server import LdapServer, slapd_missing_reason

    reason = slapd_missing_reason()
    if reason:
        if os.environ.get("PORTAL_REQUIRE_LDAP", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"{reason} PORTAL_REQUIRE_LDAP=1, so this is a failure, not a skip.")
        pytest.skip(reason)
    with LdapServer() as server:
        yield server


@pytest.fixture
def ldap_directory(ldap_server):
    """The session's LDAP server with ou=people and ou=groups emptied first."""
    ldap_server.reset()
    return ldap_server


@pytest.fixture
def webhook_server():
    """A fresh `portal.testing.webhook_server.WebhookServer` on 127.0.0.1 for this test."""
    from portal.testing.webhook_server import WebhookServer

    with WebhookServer() as server:
        yield server
