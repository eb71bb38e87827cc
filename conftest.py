"""Shared pytest fixtures: users in each audience, with their groups."""

import pytest

from accounts.tests.factories import DEMO_TEST_PASSWORD, EmployeeFactory, UserFactory
from portal.testing import mfa as mfa_testing

# Staff give a second factor before any page: `client.force_login(staff)` signs them in verified (a test
# device), so admin tests need no extra step; `force_login(user, second_factor=False)` leaves it to the test.
mfa_testing.install()


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
def scope_department(db):
    """The one department `scoped_helpdesk` is limited to; nobody works there until a test puts them there."""
    from accounts.tests.factories import DepartmentFactory

    return DepartmentFactory(name="Scoped desk", code="SCOPED")


@pytest.fixture
def scoped_helpdesk(groups, scope_department):
    """An IT helpdesk login limited to `scope_department` (an `AdminScope`, saved through its service)."""
    from accounts.models import AdminScope
    from accounts.services.scopes import admin_scope_save

    user = _staff("scoped-helpdesk", "IT helpdesk", groups)
    admin_scope_save(scope=AdminScope(user=user), departments=[scope_department], locations=[], acting_user=None)
    return user


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


# --- Self-service: a small company with every audience ---------------------------------------------


@pytest.fixture
def cast(db, groups):
    """Everyone the self-service boundaries are about, each with a login (password: `password` fixture).

    - `manager` (login "manager") manages `employee` ("employee") and `teammate` ("teammate").
    - `other_manager` ("other-manager") manages `other_employee` ("other-employee").
    - `owner` ("owner") owns `app` (GitHub: manager, then owner) and `owner_app` (Figma: owner only).
    - `other_owner` ("other-owner") owns `other_app` (Payroll: owner only).
    - `free_app` (Slack) needs no approval; `capped_app` (Prod DB) grants at most 30 days.
    - `helpdesk` and `auditor` are IT staff logins without an employee record.
    Returns a namespace; `.users[name]` gives the login of each audience.
    """
    from types import SimpleNamespace

    from accounts.models import ApprovalPolicy
    from accounts.tests.factories import ApplicationFactory, DepartmentFactory

    def person(username, first, last, **extra):
        user = UserFactory(username=username, first_name=first, last_name=last)
        return EmployeeFactory(
            user=user, first_name=first, last_name=last, work_email=f"{username}@example.com", **extra
        )

    engineering = DepartmentFactory(name="Engineering")
    finance = DepartmentFactory(name="Finance")
    head = person("head", "Hana", "Head", department=engineering)
    manager = person("manager", "Morgan", "Manager", department=engineering, manager=head)
    employee = person("employee", "Erin", "Employee", department=engineering, manager=manager)
    teammate = person("teammate", "Tom", "Teammate", department=engineering, manager=manager)
    other_manager = person("other-manager", "Olga", "Othermanager", department=finance, manager=head)
    other_employee = person("other-employee", "Oscar", "Otheremployee", department=finance, manager=other_manager)
    owner = person("owner", "Owen", "Owner", department=engineering, manager=head)
    other_owner = person("other-owner", "Orla", "Otherowner", department=finance, manager=head)
    app = ApplicationFactory(
        name="GitHub", owner=owner, approval_policy=ApprovalPolicy.MANAGER_THEN_OWNER, access_levels=["read", "write"]
    )
    owner_app = ApplicationFactory(name="Figma", owner=owner, approval_policy=ApprovalPolicy.OWNER)
    other_app = ApplicationFactory(name="Payroll", owner=other_owner, approval_policy=ApprovalPolicy.OWNER)
    free_app = ApplicationFactory(name="Slack", approval_policy=ApprovalPolicy.NONE)
    capped_app = ApplicationFactory(
        name="Prod DB", owner=owner, approval_policy=ApprovalPolicy.MANAGER, max_access_days=30
    )
    helpdesk = _staff("helpdesk", "IT helpdesk", groups)
    auditor = _staff("auditor", "Auditor", groups)
    people = {
        "head": head,
        "manager": manager,
        "employee": employee,
        "teammate": teammate,
        "other_manager": other_manager,
        "other_employee": other_employee,
        "owner": owner,
        "other_owner": other_owner,
    }
    users = {name: e.user for name, e in people.items()}
    users.update(helpdesk=helpdesk, auditor=auditor)
    return SimpleNamespace(
        **people,
        app=app,
        owner_app=owner_app,
        other_app=other_app,
        free_app=free_app,
        capped_app=capped_app,
        helpdesk=helpdesk,
        auditor=auditor,
        users=users,
    )


@pytest.fixture
def recording():
    """The recording fake connector, emptied before and after the test (see `accounts.tests.fakes`)."""
    from accounts.tests.fakes import RecordingConnector

    RecordingConnector.reset()
    yield RecordingConnector
    RecordingConnector.reset()


@pytest.fixture
def worker_settings_module():
    """The settings a real qcluster worker runs with (`portal.testing.worker.QCluster`): the project's."""
    return "config.worker_settings"
