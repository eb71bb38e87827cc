"""The ground's audit helpers on an app's models: an audit event about an employee names it, and
`set_history_user` attributes the employee's next history row (the ground's own tests use Django's models).
"""

import pytest
from django.contrib.auth.models import AnonymousUser

from accounts.tests.factories import ApplicationFactory, EmployeeFactory, EntitlementFactory, UserFactory
from portal.audit import audit_record
from portal.history import set_history_user
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def actor():
    return UserFactory(username="ada-admin")


def test_an_audit_event_about_an_employee_names_the_employee(actor):
    target = EmployeeFactory(first_name="Tess", last_name="Target", employee_number="E7")

    event = audit_record(action=AuditEvent.Action.TERMINATE, target=target, acting_user=actor)

    event.refresh_from_db()
    assert (event.target_type, event.target_id, event.target_repr) == ("accounts.Employee", str(target.pk), str(target))


def test_an_audit_event_about_a_long_entitlement_keeps_the_first_255_characters():
    target = EntitlementFactory(
        employee=EmployeeFactory(first_name="X" * 100, last_name="Y" * 100),
        application=ApplicationFactory(name="Z" * 100),
    )
    event = audit_record(action=AuditEvent.Action.LEVEL_CHANGED, target=target)
    assert event.target_repr == str(target)[:255]
    assert len(event.target_repr) == 255


def test_set_history_user_attributes_the_next_history_row(actor):
    employee = EmployeeFactory()
    employee.title = "Lead"

    set_history_user(employee, actor).save()

    latest = employee.history.first()
    assert (latest.history_type, latest.title, latest.history_user) == ("~", "Lead", actor)


@pytest.mark.parametrize("acting_user", [None, AnonymousUser()], ids=["none", "anonymous"])
def test_set_history_user_without_a_user_records_the_system(acting_user):
    employee = EmployeeFactory()
    set_history_user(employee, acting_user).save()
    assert employee.history.first().history_user is None
