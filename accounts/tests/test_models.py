"""Constraints and `clean()` rules of the accounts models, on SQLite and PostgreSQL.

Each rule is checked twice: the database refuses the bad row (an `IntegrityError`, or a
`DataError` where PostgreSQL enforces a column length first), and model validation refuses it
with the constraint's `violation_error_message`, which is what admin forms and services show.
"""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.db import DataError, IntegrityError, transaction

from accounts.models import (
    AccessRequest,
    AccessRequestStatus,
    Application,
    ApprovalPolicy,
    ApprovalStep,
    ApprovalStepKind,
    Department,
    Employee,
    Entitlement,
    EntitlementStatus,
    Location,
    Region,
    RoleApplication,
)
from accounts.tests.factories import (
    AccessRequestFactory,
    ApplicationFactory,
    DepartmentFactory,
    EmployeeFactory,
    EntitlementFactory,
    LocationFactory,
    RoleFactory,
)

pytestmark = pytest.mark.django_db

START = datetime.date(2024, 1, 15)
JAN_1 = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)


def assert_db_refuses(instance, errors=(IntegrityError,)):
    """Saving `instance` (skipping model validation) fails in the database itself."""
    with pytest.raises(errors), transaction.atomic():
        instance.save()


def messages_of(call) -> list[str]:
    with pytest.raises(ValidationError) as exc:
        call()
    return exc.value.messages


def error_dict_of(call) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as exc:
        call()
    return exc.value.message_dict


# --- Location -------------------------------------------------------------------------


@pytest.mark.parametrize("country", ["de", "D1", "1E"])
def test_location_country_must_be_two_capital_letters(country):
    location = LocationFactory.build(country=country)

    assert "Country must be two capital letters (ISO 3166-1 alpha-2), e.g. DE." in messages_of(
        location.validate_constraints
    )
    assert_db_refuses(location)


def test_location_country_of_three_letters_is_refused_on_every_database():
    # PostgreSQL refuses the length (varchar(2)); SQLite ignores lengths, so the check constraint must.
    location = LocationFactory.build(country="DEU")

    assert "Country must be two capital letters (ISO 3166-1 alpha-2), e.g. DE." in messages_of(
        location.validate_constraints
    )
    assert_db_refuses(location, errors=(IntegrityError, DataError))


def test_location_with_iso_country_is_valid():
    location = Location(name="Paris", code="PAR-1", country="FR", region=Region.EMEA)
    location.full_clean()
    location.save()
    assert Location.objects.filter(country="FR").count() == 1


# --- Department -----------------------------------------------------------------------


def test_department_cannot_be_its_own_parent():
    department = DepartmentFactory()
    department.parent = department

    assert "A department cannot be its own parent." in messages_of(department.validate_constraints)
    assert error_dict_of(department.full_clean) == {
        "parent": ["This parent would make a cycle in the department tree."]
    }
    assert_db_refuses(department)


def test_department_cycle_through_a_descendant_is_refused_by_clean():
    top = DepartmentFactory()
    middle = DepartmentFactory(parent=top)
    bottom = DepartmentFactory(parent=middle)
    top.parent = bottom

    assert error_dict_of(top.full_clean) == {"parent": ["This parent would make a cycle in the department tree."]}


def test_department_moved_under_an_unrelated_branch_is_valid():
    top = DepartmentFactory()
    other = DepartmentFactory()
    child = DepartmentFactory(parent=top)
    child.parent = other
    child.full_clean()


# --- Employee -------------------------------------------------------------------------


def build_employee(**kwargs) -> Employee:
    kwargs.setdefault("department", None)
    kwargs.setdefault("location", None)
    return EmployeeFactory.build(**kwargs)


def test_employee_end_date_before_start_date_is_refused():
    employee = build_employee(start_date=START, end_date=START - datetime.timedelta(days=1))

    assert "End date cannot be before the start date." in messages_of(employee.validate_constraints)
    assert "End date cannot be before the start date." in messages_of(employee.full_clean)
    assert_db_refuses(employee)


def test_employee_may_end_on_the_day_they_start():
    employee = build_employee(start_date=START, end_date=START)
    employee.full_clean()
    employee.save()


def test_employee_work_email_is_unique_regardless_of_case():
    EmployeeFactory(work_email="alice@example.com")
    duplicate = build_employee(work_email="Alice@Example.COM")

    assert "Another employee already has this work email." in messages_of(duplicate.validate_constraints)
    # A raw save (no clean(), so no lower-casing) is still refused by the database.
    assert_db_refuses(duplicate)


def test_employee_clean_lowercases_work_email_and_full_clean_refuses_the_duplicate():
    EmployeeFactory(work_email="alice@example.com")
    duplicate = build_employee(work_email="ALICE@example.com")

    errors = error_dict_of(duplicate.full_clean)

    assert duplicate.work_email == "alice@example.com"
    assert errors == {"work_email": ["Employee with this Work email already exists."]}


def test_employee_cannot_be_their_own_manager():
    employee = EmployeeFactory()
    employee.manager = employee

    assert "An employee cannot be their own manager." in messages_of(employee.validate_constraints)
    assert error_dict_of(employee.full_clean)["manager"] == ["An employee cannot be their own manager."]
    assert_db_refuses(employee)


def test_employee_reporting_line_cycle_is_refused_by_clean():
    ceo = EmployeeFactory()
    vp = EmployeeFactory(manager=ceo)
    lead = EmployeeFactory(manager=vp)
    ceo.manager = lead

    assert error_dict_of(ceo.full_clean) == {"manager": ["This manager would make a cycle in the reporting line."]}


def test_employee_ordinary_reporting_line_is_valid():
    ceo = EmployeeFactory()
    vp = EmployeeFactory(manager=ceo)
    lead = EmployeeFactory(manager=vp)
    lead.full_clean()


def test_employee_number_is_unique():
    EmployeeFactory(employee_number="E1")
    assert_db_refuses(build_employee(employee_number="E1"))


# --- Application and birthrights ------------------------------------------------------


@pytest.mark.parametrize("policy", [ApprovalPolicy.OWNER, ApprovalPolicy.MANAGER_THEN_OWNER])
def test_owner_approval_policies_need_an_owner(policy):
    application = ApplicationFactory.build(approval_policy=policy, owner=None)

    assert error_dict_of(application.full_clean) == {"owner": ["This approval policy needs an application owner."]}

    application.owner = EmployeeFactory()
    application.full_clean()


@pytest.mark.parametrize("policy", [ApprovalPolicy.NONE, ApprovalPolicy.MANAGER])
def test_other_policies_need_no_owner(policy):
    ApplicationFactory.build(approval_policy=policy, owner=None).full_clean()


@pytest.mark.parametrize(
    ("levels", "message"),
    [
        ([], 'Give a non-empty list of level names, e.g. ["user", "admin"].'),
        ("admin", 'Give a non-empty list of level names, e.g. ["user", "admin"].'),
        (["user", ""], 'Give a non-empty list of level names, e.g. ["user", "admin"].'),
        (["user", 3], 'Give a non-empty list of level names, e.g. ["user", "admin"].'),
        (["user", "user"], "Each access level may appear only once."),
    ],
)
def test_application_access_levels_must_be_a_list_of_distinct_names(levels, message):
    application = ApplicationFactory.build(access_levels=levels)
    assert message in error_dict_of(application.full_clean)["access_levels"]


def test_application_connector_config_must_be_an_object():
    application = ApplicationFactory.build(connector_config=["not", "an", "object"])
    assert error_dict_of(application.full_clean) == {
        "connector_config": ["Connector configuration must be a JSON object."]
    }


def test_role_application_level_must_be_one_of_the_application_levels():
    birthright = RoleApplication(role=RoleFactory(), application=ApplicationFactory(name="Jira"), access_level="owner")
    assert error_dict_of(birthright.full_clean) == {
        "access_level": ["Jira has no level 'owner'; choose one of user, admin."]
    }


def test_role_has_one_birthright_per_application():
    role, application = RoleFactory(), ApplicationFactory()
    RoleApplication.objects.create(role=role, application=application)
    duplicate = RoleApplication(role=role, application=application, access_level="admin")

    assert "This role already has this application as a birthright." in messages_of(duplicate.validate_constraints)
    assert_db_refuses(duplicate)


# --- Entitlement ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "live_status", [EntitlementStatus.PENDING, EntitlementStatus.ACTIVE, EntitlementStatus.REVOKING]
)
def test_one_live_entitlement_per_employee_and_application(live_status):
    existing = EntitlementFactory(status=live_status)
    duplicate = Entitlement(
        employee=existing.employee, application=existing.application, level="admin", status=EntitlementStatus.PENDING
    )

    assert "This employee already holds (or is being given) access to this application." in messages_of(
        duplicate.validate_constraints
    )
    assert_db_refuses(duplicate)


def test_revoked_entitlements_may_repeat_beside_one_live_one():
    live = EntitlementFactory()
    for _ in range(2):
        revoked = Entitlement(
            employee=live.employee,
            application=live.application,
            status=EntitlementStatus.REVOKED,
            granted_at=JAN_1,
            revoked_at=JAN_1 + datetime.timedelta(days=1),
        )
        revoked.full_clean()
        revoked.save()

    assert Entitlement.objects.filter(employee=live.employee, application=live.application).count() == 3


def test_same_application_for_another_employee_is_allowed():
    live = EntitlementFactory()
    other = Entitlement(employee=EmployeeFactory(), application=live.application, status=EntitlementStatus.ACTIVE)
    other.full_clean()
    other.save()


@pytest.mark.parametrize("status", [EntitlementStatus.PENDING, EntitlementStatus.ACTIVE, EntitlementStatus.REVOKING])
def test_only_a_revoked_entitlement_has_a_revocation_time(status):
    entitlement = EntitlementFactory.build(
        employee=EmployeeFactory(), application=ApplicationFactory(), status=status, revoked_at=JAN_1
    )

    assert "Only a revoked entitlement has a revocation time." in messages_of(entitlement.validate_constraints)
    assert_db_refuses(entitlement)


def test_entitlement_level_must_be_one_of_the_application_levels():
    entitlement = EntitlementFactory.build(
        employee=EmployeeFactory(), application=ApplicationFactory(name="Figma"), level="owner"
    )
    assert error_dict_of(entitlement.full_clean) == {
        "level": ["Figma has no level 'owner'; choose one of user, admin."]
    }


def test_entitlement_expiry_must_follow_the_grant():
    entitlement = EntitlementFactory.build(
        employee=EmployeeFactory(), application=ApplicationFactory(), granted_at=JAN_1, expires_at=JAN_1
    )
    assert error_dict_of(entitlement.full_clean) == {"expires_at": ["Expiry must be after the grant time."]}


# --- Access requests and approval steps -----------------------------------------------


def test_one_pending_access_request_per_employee_and_application():
    existing = AccessRequestFactory()
    duplicate = AccessRequest(employee=existing.employee, application=existing.application, justification="Again.")

    assert "There is already a pending request for this application." in messages_of(duplicate.validate_constraints)
    assert_db_refuses(duplicate)


@pytest.mark.parametrize(
    "decided", [AccessRequestStatus.APPROVED, AccessRequestStatus.REJECTED, AccessRequestStatus.CANCELLED]
)
def test_decided_requests_do_not_block_a_new_one(decided):
    old = AccessRequestFactory(status=decided)
    new = AccessRequest(employee=old.employee, application=old.application, justification="New project.")
    new.full_clean()
    new.save()


def test_access_request_needs_a_justification():
    request = AccessRequestFactory.build(employee=EmployeeFactory(), application=ApplicationFactory(), justification="")

    assert "A justification is required." in messages_of(request.validate_constraints)
    # full_clean reports the blank field itself (and then skips the constraint on that field).
    assert error_dict_of(request.full_clean) == {"justification": ["This field cannot be blank."]}
    assert_db_refuses(request)


def test_access_request_justification_of_only_spaces_is_refused():
    request = AccessRequestFactory.build(
        employee=EmployeeFactory(), application=ApplicationFactory(), justification="   \n "
    )
    assert "A justification is required." in messages_of(request.validate_constraints)


def test_access_request_level_must_be_one_of_the_application_levels():
    request = AccessRequestFactory.build(
        employee=EmployeeFactory(), application=ApplicationFactory(name="Miro"), level="superuser"
    )
    assert error_dict_of(request.full_clean) == {"level": ["Miro has no level 'superuser'."]}


def test_approval_steps_of_one_request_have_distinct_positions():
    request = AccessRequestFactory()
    approver = EmployeeFactory()
    ApprovalStep.objects.create(request=request, order=1, kind=ApprovalStepKind.MANAGER, approver=approver)
    duplicate = ApprovalStep(request=request, order=1, kind=ApprovalStepKind.OWNER, approver=approver)

    assert "Two steps of one request cannot share a position." in messages_of(duplicate.validate_constraints)
    assert_db_refuses(duplicate)


def test_application_name_is_unique():
    Application.objects.create(name="Slack")
    assert_db_refuses(Application(name="Slack"))


def test_department_code_is_unique():
    Department.objects.create(name="Finance", code="FIN")
    assert_db_refuses(Department(name="Finance 2", code="FIN"))


@pytest.mark.parametrize("zone", ["UTC", "Australia/Sydney", "America/New_York"])
def test_an_entitlements_last_day_is_the_end_date_it_was_granted_to(settings, zone):
    """Access to an end date expires at the next local midnight; "Until" shows the end date, not the day after."""
    import datetime

    from django.utils import timezone

    from accounts.models import Entitlement
    from accounts.services.access_requests import expires_at_for

    settings.TIME_ZONE = zone
    with timezone.override(zone):
        end = datetime.date(2027, 3, 31)
        assert Entitlement(expires_at=expires_at_for(end)).last_day == end
        assert Entitlement(expires_at=None).last_day is None
