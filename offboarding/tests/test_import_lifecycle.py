"""The HR file import runs the lifecycle: joiners get their join run, movers their move run."""

import pytest

from accounts.hr_import import employee_import_plan
from accounts.models import Employee
from accounts.services.hr_import import employee_import_apply
from accounts.tests.factories import (
    ApplicationFactory,
    DepartmentFactory,
    EmployeeFactory,
    LocationFactory,
    RoleFactory,
)
from offboarding.models import ChecklistKind, ChecklistRun
from portal.tabular import table_read

pytestmark = pytest.mark.django_db

HEADER = "employee_number,first_name,last_name,work_email,title,department,location,manager,role,status,start_date"


@pytest.fixture
def org():
    DepartmentFactory(code="ENG", name="Engineering")
    DepartmentFactory(code="FIN", name="Finance")
    LocationFactory(code="BER-1", name="Berlin")
    dev = RoleFactory(code="dev", name="Developer")
    RoleFactory(code="analyst", name="Analyst")
    dev.birthrights.create(application=ApplicationFactory(name="GitHub"), access_level="user")
    EmployeeFactory(employee_number="M001", first_name="Mia", last_name="Manager", work_email="mia@example.com")


def load(*lines):
    return employee_import_plan(table_read(("\n".join([HEADER, *lines]) + "\n").encode(), file_name="hr.csv"))


def apply(plan, user):
    assert plan.ok, plan.problems
    return employee_import_apply(plan=plan, acting_user=user, file_name="hr.csv")


def test_an_imported_joiner_gets_a_join_run_and_a_dry_run_starts_nothing(org, it_admin):
    row = "E001,Ada,Lovelace,ada@example.com,Engineer,ENG,BER-1,M001,dev,pre_hire,2030-02-01"
    preview = load(row)
    assert preview.summary()["join_runs"] == 1
    assert not Employee.objects.filter(employee_number="E001").exists()
    assert not ChecklistRun.objects.exists()
    apply(preview, it_admin)
    ada = Employee.objects.get(employee_number="E001")
    run = ChecklistRun.objects.get(employee=ada)
    assert (run.kind, run.event_date.isoformat(), run.started_by) == (ChecklistKind.JOIN, "2030-02-01", it_admin)


def test_an_imported_change_of_role_or_manager_is_a_move(org, it_admin):
    ada = EmployeeFactory(
        employee_number="E001",
        work_email="ada@example.com",
        department=DepartmentFactory(code="OLD"),
        role=RoleFactory(code="old"),
    )
    row = "E001,Ada,Lovelace,ada@example.com,Engineer,FIN,BER-1,M001,analyst,active,2024-01-15"
    plan = load(row)
    assert plan.summary()["move_runs"] == 1
    apply(plan, it_admin)
    ada.refresh_from_db()
    assert (ada.role.code, ada.department.code, ada.manager.employee_number) == ("analyst", "FIN", "M001")
    run = ChecklistRun.objects.get(employee=ada, kind=ChecklistKind.MOVE)
    (move,) = run.details["moves"]
    assert set(move["changes"]) == {"role", "department", "manager"}
    assert move["changes"]["role"][1]["name"] == "Analyst"
    # The same file again changes nothing and starts nothing.
    again = load(row)
    assert again.summary() == {"rows": 1, "created": 0, "updated": 0, "unchanged": 1, "join_runs": 0, "move_runs": 0}
    apply(again, it_admin)
    assert ChecklistRun.objects.filter(employee=ada).count() == 1
