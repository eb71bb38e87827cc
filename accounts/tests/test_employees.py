"""Employee records: `accounts.services.employees` (create, delete; the lifecycle's status, login and
anonymisation are exercised by the join, move, leave and purge flows in offboarding's tests).

Every change is checked for its effect, its history row (naming the acting user) and its
audit event; every refusal for its message and for leaving nothing behind.
"""

import datetime

import pytest
from django.core.exceptions import ValidationError

from accounts.models import AccessRequestStatus, Employee, EmployeeStatus, EntitlementStatus
from accounts.services.employees import (
    employee_create,
    employee_delete,
    employee_deletion_blockers,
)
from accounts.tests.factories import (
    AccessRequestFactory,
    DepartmentFactory,
    EmployeeFactory,
    EntitlementFactory,
    UserFactory,
)
from portal.models import AuditEvent
from portal.testing.assertions import refused, refused_and_nothing_written


@pytest.fixture
def admin_user(db):
    return UserFactory(username="ada-admin")


@pytest.fixture
def alice(db):
    return EmployeeFactory(first_name="Alice", last_name="Able", employee_number="E100")


@pytest.mark.django_db
def test_delete_a_clean_employee_with_history_and_audit(admin_user):
    mistake = EmployeeFactory(first_name="Dup", last_name="Licate", employee_number="E999")
    pk = mistake.pk

    employee_delete(employee=mistake, acting_user=admin_user)

    assert not Employee.objects.filter(pk=pk).exists()
    deleted = Employee.history.filter(id=pk).first()
    assert (deleted.history_type, deleted.history_user) == ("-", admin_user)
    event = AuditEvent.objects.get()
    assert (event.action, event.actor, event.target_id) == (AuditEvent.Action.DELETE, admin_user, str(pk))
    assert event.target_repr == "Dup Licate (E999)"


@pytest.mark.django_db
def test_delete_of_a_manager_and_department_head_clears_those_links(admin_user):
    manager = EmployeeFactory()
    report = EmployeeFactory(manager=manager)
    department = DepartmentFactory(head=manager)

    employee_delete(employee=manager, acting_user=admin_user)

    report.refresh_from_db()
    department.refresh_from_db()
    assert (report.manager, department.head) == (None, None)


@pytest.mark.django_db
def test_delete_is_refused_naming_the_access_that_blocks_it(alice, admin_user):
    EntitlementFactory(employee=alice)
    EntitlementFactory(employee=alice)
    AccessRequestFactory(employee=alice)

    message = refused(employee_delete, employee=alice, acting_user=admin_user)

    assert message == (
        "Alice Able cannot be deleted: these records still refer to them: 1 access request, 2 entitlements. "
        "Set their status to terminated instead, so the audit trail stays whole."
    )


@pytest.mark.django_db
def test_delete_is_refused_for_access_held_in_the_past(alice, admin_user):
    EntitlementFactory(
        employee=alice, status=EntitlementStatus.REVOKED, revoked_at=datetime.datetime(2025, 2, 1, tzinfo=datetime.UTC)
    )
    AccessRequestFactory(employee=alice, status=AccessRequestStatus.REJECTED)

    assert employee_deletion_blockers(employee=alice) == ["1 access request", "1 entitlement"]
    refused(employee_delete, employee=alice, acting_user=admin_user)


@pytest.mark.django_db
def test_delete_of_an_employee_already_gone_is_refused(admin_user):
    ghost = EmployeeFactory(first_name="Gus", last_name="Ghost")
    Employee.objects.filter(pk=ghost.pk).delete()

    assert refused(employee_delete, employee=ghost, acting_user=admin_user) == (
        "Gus Ghost no longer exists; nothing to delete."
    )


# --- employee_create --------------------------------------------------------------------


def new_employee(**fields) -> Employee:
    values = {
        "employee_number": "E200",
        "first_name": "Grace",
        "last_name": "Hopper",
        "work_email": "grace.hopper@example.com",
        "start_date": datetime.date(2026, 3, 1),
    }
    return Employee(**{**values, **fields})


@pytest.mark.django_db
@pytest.mark.parametrize("via", ["admin", "import"])
def test_create_inserts_the_employee_with_one_history_row_and_one_audit_event(admin_user, via):
    employee = employee_create(employee=new_employee(), acting_user=admin_user, via=via)

    saved = Employee.objects.get(employee_number="E200")
    assert saved.pk == employee.pk
    assert (saved.full_name, saved.status) == ("Grace Hopper", EmployeeStatus.PRE_HIRE)
    [history] = saved.history.all()
    assert (history.history_type, history.history_user) == ("+", admin_user)
    [event] = AuditEvent.objects.all()
    assert (event.action, event.actor, event.target_id) == (
        AuditEvent.Action.EMPLOYEE_CREATED,
        admin_user,
        str(saved.pk),
    )
    assert event.detail == {"via": via}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"employee_number": "E100"}, "Employee with this Employee number already exists."),
        ({"first_name": "", "last_name": ""}, "This field cannot be blank."),
        ({"work_email": "ALICE@example.com"}, "already"),
    ],
)
def test_create_refuses_bad_input_and_writes_nothing(alice, admin_user, fields, message):
    Employee.objects.filter(pk=alice.pk).update(work_email="alice@example.com")

    with refused_and_nothing_written(ValidationError, match=message):
        employee_create(employee=new_employee(**fields), acting_user=admin_user, via="admin")


@pytest.mark.django_db
def test_a_change_validates_what_it_changes_and_the_constraints_it_touches(django_assert_max_num_queries):
    """`employee_update` validates the fields changed and the check constraints they take part in (a last day
    against the start date), not every unique field again: a last day before the start is still refused."""
    from accounts.services.employees import employee_update

    employee = EmployeeFactory(start_date=datetime.date(2026, 3, 1))
    with pytest.raises(ValidationError, match="End date cannot be before the start date"):
        employee_update(employee=employee, changes={"end_date": datetime.date(2026, 2, 1)}, acting_user=None)
    employee.refresh_from_db()
    assert employee.end_date is None
    # Its savepoint, the lock, the constraint check (with its savepoint: 3), update, history, release: no
    # unique field nor the department checked again (16 when every field was validated).
    with django_assert_max_num_queries(8):
        employee_update(employee=employee, changes={"end_date": datetime.date(2026, 4, 1)}, acting_user=None)
    employee.refresh_from_db()
    assert employee.end_date == datetime.date(2026, 4, 1)
