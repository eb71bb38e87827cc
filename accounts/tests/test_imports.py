"""File imports: natural keys, re-import updates, all-or-nothing with row/column/reason, history and audit.

Most tests call the resources directly; a few go through the admin's upload,
preview and confirm pages, in CSV and XLSX.
"""

import io

import pytest
import tablib
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts import resources
from accounts.models import Employee, EmployeeStatus
from accounts.resources import ApplicationResource, DepartmentResource, EmployeeResource, LocationResource
from accounts.services.employees import employee_create
from accounts.tests.factories import (
    DepartmentFactory,
    EmployeeFactory,
    LocationFactory,
    RoleFactory,
)
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db

HEADER = "employee_number,first_name,last_name,work_email,title,department,location,manager,role,status,start_date"


@pytest.fixture
def org():
    DepartmentFactory(code="ENG", name="Engineering")
    LocationFactory(code="BER-1", name="Berlin")
    RoleFactory(code="dev", name="Developer")
    EmployeeFactory(employee_number="M001", first_name="Mia", last_name="Manager", work_email="mia@example.com")


def csv_dataset(*lines, header=HEADER):
    return tablib.Dataset().load("\n".join([header, *lines]) + "\n", format="csv")


def good_rows():
    return (
        "E001,Ada,Lovelace,Ada@Example.com,Engineer,ENG,BER-1,M001,dev,active,2026-02-01",
        "E002,Alan,Turing,alan@example.com,Engineer,ENG,BER-1,E001,dev,pre_hire,2026-03-01",
    )


def run_import(resource, dataset, user=None, dry_run=False):
    return resource.import_data(dataset, dry_run=dry_run, user=user, file_name="hr.csv")


def errors_of(result):
    """{row number: {column: [messages]}} for every invalid row."""
    return {row.number: row.error_dict for row in result.invalid_rows}


# --- Happy path ---------------------------------------------------------------------------------------


def test_csv_import_creates_rows_with_natural_keys_history_and_audit(org, it_admin):
    result = run_import(EmployeeResource(), csv_dataset(*good_rows()), user=it_admin)
    assert not result.has_errors() and not result.has_validation_errors()
    assert result.totals["new"] == 2
    ada = Employee.objects.get(employee_number="E001")
    alan = Employee.objects.get(employee_number="E002")
    assert ada.work_email == "ada@example.com"  # normalised by the model's clean()
    assert (ada.department.code, ada.location.code, ada.manager.employee_number, ada.role.code) == (
        "ENG",
        "BER-1",
        "M001",
        "dev",
    )
    assert alan.manager == ada  # a manager from an earlier row of the same file
    for employee in (ada, alan):
        record = employee.history.get()
        assert record.history_type == "+" and record.history_user == it_admin
    events = AuditEvent.objects.filter(action=AuditEvent.Action.IMPORT, actor=it_admin)
    assert events.count() == 2
    assert events.filter(
        target_id=str(ada.pk), personal__detail__created=True, personal__detail__file="hr.csv"
    ).exists()


def test_new_people_are_inserted_by_the_employee_create_service_and_updates_are_not(org, it_admin, monkeypatch):
    created = []

    def spy(*, employee, acting_user, via):
        created.append((employee.employee_number, acting_user, via))
        return employee_create(employee=employee, acting_user=acting_user, via=via)

    monkeypatch.setattr(resources, "employee_create", spy)
    run_import(EmployeeResource(), csv_dataset(*good_rows()), user=it_admin)
    assert created == [("E001", it_admin, "import"), ("E002", it_admin, "import")]

    changed = good_rows()[0].replace("Engineer", "Staff Engineer")
    run_import(EmployeeResource(), csv_dataset(changed), user=it_admin)
    assert len(created) == 2
    assert Employee.objects.get(employee_number="E001").title == "Staff Engineer"


def test_reimport_updates_instead_of_duplicating(org, it_admin):
    run_import(EmployeeResource(), csv_dataset(*good_rows()), user=it_admin)
    changed = good_rows()[0].replace("Engineer", "Staff Engineer")
    result = run_import(EmployeeResource(), csv_dataset(changed, good_rows()[1]), user=it_admin)
    assert not result.has_validation_errors()
    assert (result.totals["update"], result.totals["skip"]) == (1, 1)  # the unchanged row is skipped
    assert Employee.objects.filter(employee_number__in=["E001", "E002"]).count() == 2
    ada = Employee.objects.get(employee_number="E001")
    assert ada.title == "Staff Engineer"
    assert [h.history_type for h in ada.history.all()] == ["~", "+"]


def test_blank_cell_keeps_current_value_on_update_and_means_default_on_create(org, it_admin):
    run_import(EmployeeResource(), csv_dataset(*good_rows()), user=it_admin)
    blank_status = good_rows()[0].replace(",active,", ",,")
    new_row = "E003,Edsger,Dijkstra,edsger@example.com,,ENG,BER-1,,,,2026-04-01"
    result = run_import(EmployeeResource(), csv_dataset(blank_status, new_row), user=it_admin)
    assert not result.has_validation_errors(), errors_of(result)
    assert Employee.objects.get(employee_number="E001").status == EmployeeStatus.ACTIVE
    assert Employee.objects.get(employee_number="E003").status == EmployeeStatus.PRE_HIRE


def test_dry_run_writes_nothing(org):
    result = run_import(EmployeeResource(), csv_dataset(*good_rows()), dry_run=True)
    assert result.totals["new"] == 2
    assert not Employee.objects.filter(employee_number__in=["E001", "E002"]).exists()
    assert not AuditEvent.objects.exists()


# --- All or nothing --------------------------------------------------------------------------------------

GOOD = "E010,Grace,Hopper,grace@example.com,Admiral,ENG,BER-1,M001,dev,active,2026-01-05"
BAD_ROWS = {
    "unknown department": (
        "E011,Bad,Dept,bad@example.com,,NOPE,BER-1,,,active,2026-01-05",
        "department",
        "No department with code 'NOPE'",
    ),
    "unknown manager": (
        "E011,Bad,Boss,bad@example.com,,ENG,BER-1,X999,,active,2026-01-05",
        "manager",
        "No employee with employee number 'X999'",
    ),
    "duplicate in file": (
        "E010,Grace,Again,grace2@example.com,,ENG,BER-1,,,active,2026-01-05",
        "employee_number",
        "Duplicate: row 1 of this file has the same employee_number (E010)",
    ),
    "duplicate against database": (
        "E011,Mia,Clone,MIA@example.com,,ENG,BER-1,,,active,2026-01-05",
        "work_email",
        "already exists",
    ),
    "too long": (
        "E011," + "x" * 101 + ",Long,long@example.com,,ENG,BER-1,,,active,2026-01-05",
        "first_name",
        "at most 100 characters (it has 101)",
    ),
    "bad date": (
        "E011,Bad,Date,date@example.com,,ENG,BER-1,,,active,31/02/2026",
        "start_date",
        "'31/02/2026' is not a date; write it as YYYY-MM-DD",
    ),
    "bad choice": (
        "E011,Bad,Choice,choice@example.com,,ENG,BER-1,,,retired,2026-01-05",
        "status",
        "'retired' is not a valid choice",
    ),
    "terminated by import": (
        "E011,Bad,Leaver,leaver@example.com,,ENG,BER-1,,,terminated,2026-01-05",
        "status",
        "cannot be terminated by import",
    ),
}


@pytest.mark.parametrize("kind", list(BAD_ROWS))
def test_one_bad_row_writes_nothing_and_names_row_column_and_reason(org, it_admin, kind):
    bad, column, reason = BAD_ROWS[kind]
    before = Employee.objects.count()
    result = run_import(EmployeeResource(), csv_dataset(GOOD, bad), user=it_admin)
    assert result.has_validation_errors()
    errors = errors_of(result)
    assert list(errors) == [2], errors  # the good first row is fine; the second is named
    assert column in errors[2], errors
    assert any(reason in message for message in errors[2][column]), errors[2][column]
    assert Employee.objects.count() == before
    assert not Employee.objects.filter(employee_number="E010").exists()
    assert not AuditEvent.objects.exists()
    assert not Employee.history.filter(employee_number="E010").exists()


def test_every_bad_row_is_reported_not_just_the_first(org):
    lines = [GOOD, *(row for row, _, _ in BAD_ROWS.values() if not row.startswith("E010"))]
    lines = [line.replace("E011", f"E1{i:02d}") for i, line in enumerate(lines)]
    result = run_import(EmployeeResource(), csv_dataset(*lines))
    assert sorted(errors_of(result)) == list(range(2, len(lines) + 1))


def test_terminated_employee_may_be_reimported_unchanged(org, it_admin):
    EmployeeFactory(employee_number="E050", work_email="old@example.com", status=EmployeeStatus.TERMINATED)
    line = "E050,Old,Timer,old@example.com,,ENG,BER-1,,,terminated,2024-01-15"
    result = run_import(EmployeeResource(), csv_dataset(line), user=it_admin)
    assert not result.has_validation_errors(), errors_of(result)


def test_organisation_resources_round_trip(org, it_admin):
    location_csv = "code,name,country,region,city\nPAR-1,Paris,FR,emea,Paris\nLON-1,London,gb,emea,London\n"
    result = run_import(LocationResource(), tablib.Dataset().load(location_csv, format="csv"), user=it_admin)
    errors = errors_of(result)
    assert list(errors) == [2] and "two capital letters" in str(errors[2])  # check constraint, not saved
    departments = "code,name,parent,head,cost_center\nPLAT,Platform,ENG,M001,CC-1\nSRE,SRE,PLAT,,\n"
    result = run_import(DepartmentResource(), tablib.Dataset().load(departments, format="csv"), user=it_admin)
    assert not result.has_validation_errors(), errors_of(result)
    exported = DepartmentResource().export()
    assert "SRE,SRE,PLAT,," in exported.csv.replace("\r\n", "\n")
    apps = 'name,owner,access_levels,approval_policy\nGitHub,M001,"user, admin",owner\nJira,,,manager\n'
    result = run_import(ApplicationResource(), tablib.Dataset().load(apps, format="csv"), user=it_admin)
    assert not result.has_validation_errors(), errors_of(result)
    from accounts.models import Application

    assert Application.objects.get(name="GitHub").access_levels == ["user", "admin"]
    assert Application.objects.get(name="Jira").access_levels == ["user"]


# --- Hardware and licenses ---------------------------------------------------------------------------------


# --- Through the admin: upload, preview, confirm ------------------------------------------------------------


def admin_import(client, content, filename):
    """Upload through the HR import page (accounts.hr_import_admin); returns the response."""
    url = reverse("admin:accounts_employee_import")
    data = {"import_file": SimpleUploadedFile(filename, content), "encoding": "auto", "date_format": "iso"}
    return client.post(url, data)


def test_admin_csv_import_preview_then_confirm_records_the_importing_user(client, helpdesk, org):
    client.force_login(helpdesk)
    content = "\n".join([HEADER, *good_rows()]).encode()
    preview = admin_import(client, content, "hr.csv")
    assert preview.status_code == 302
    assert not Employee.objects.filter(employee_number="E001").exists()  # the preview writes nothing
    response = client.post(preview["Location"], {"_confirm": "1"})
    assert response.status_code == 302
    ada = Employee.objects.get(employee_number="E001")
    assert ada.history.get().history_user == helpdesk
    assert AuditEvent.objects.filter(action=AuditEvent.Action.IMPORT, actor=helpdesk).count() == 2


def test_admin_preview_of_bad_file_shows_row_column_reason_and_offers_no_confirm(client, helpdesk, org):
    client.force_login(helpdesk)
    content = "\n".join([HEADER, GOOD, BAD_ROWS["unknown department"][0]]).encode()
    response = admin_import(client, content, "hr.csv")
    assert response.status_code == 400
    assert 'name="_confirm"' not in response.content.decode()
    (problem,) = response.context["problems"]
    assert (problem["row"], problem["column"], problem["value"]) == (3, "department", "NOPE")
    assert not Employee.objects.filter(employee_number="E010").exists()


def test_admin_xlsx_import(client, helpdesk, org):
    dataset = csv_dataset(*good_rows())
    buffer = io.BytesIO(dataset.export("xlsx"))
    client.force_login(helpdesk)
    preview = admin_import(client, buffer.getvalue(), "hr.xlsx")
    assert preview.status_code == 302, preview.context and preview.context["problems"]
    client.post(preview["Location"], {"_confirm": "1"})
    assert set(
        Employee.objects.filter(employee_number__startswith="E00").values_list("employee_number", flat=True)
    ) == {
        "E001",
        "E002",
    }


def test_admin_xlsx_export(client, auditor, org):
    client.force_login(auditor)
    url = reverse("admin:accounts_employee_export")
    form = client.get(url).context["form"]
    xlsx = next(value for value, label in form.fields["format"].choices if label.lower() == "xlsx")
    data = {"format": xlsx, "resource": "0"}
    # The registered admin's resource (the lifecycle app extends EmployeeResource); its fields are prefixed by its name.
    from django.contrib import admin

    resource_class = admin.site.get_model_admin(Employee).resource_classes[0]
    assert issubclass(resource_class, EmployeeResource)
    data.update({f"{resource_class.__name__.lower()}_{name}": "on" for name in resource_class.fields})
    response = client.post(url, data)
    assert response.status_code == 200
    book = tablib.Dataset().load(response.content, format="xlsx")
    assert "M001" in book["employee_number"]


def test_admin_confirm_meeting_new_errors_writes_nothing_and_says_why(client, helpdesk, org):
    """Between preview and confirm someone else took a work email the file uses: all rows roll back."""
    client.force_login(helpdesk)
    preview = admin_import(client, "\n".join([HEADER, *good_rows()]).encode(), "hr.csv")
    EmployeeFactory(employee_number="Z999", work_email="alan@example.com")
    response = client.post(preview["Location"], {"_confirm": "1"}, follow=True)
    assert not Employee.objects.filter(employee_number__in=["E001", "E002"]).exists()
    html = response.content.decode()
    assert "the data changed since the preview. Nothing was written." in html
    assert "This is already the work email of" in html
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.IMPORT).exists()


# --- A scoped helpdesk's HR import: only people inside its scope, all rows or none ------------------------


def _scoped_rows(*extra):
    return (
        "E001,Ada,Lovelace,ada@example.com,Engineer,SCOPED,BER-1,,dev,active,2026-02-01",
        "E002,Alan,Turing,alan@example.com,Engineer,SCOPED,BER-1,E001,dev,pre_hire,2026-03-01",
        *extra,
    )


def test_scoped_helpdesk_imports_people_inside_its_scope(client, scoped_helpdesk, org):
    client.force_login(scoped_helpdesk)
    preview = admin_import(client, "\n".join([HEADER, *_scoped_rows()]).encode(), "hr.csv")
    assert preview.status_code == 302, preview.context and preview.context["problems"]
    client.post(preview["Location"], {"_confirm": "1"})
    assert set(Employee.objects.filter(department__code="SCOPED").values_list("employee_number", flat=True)) == {
        "E001",
        "E002",
    }


@pytest.mark.parametrize(
    "line, column, reason",
    [
        # A new person in a department and at a location outside the scope.
        (
            "E003,Grace,Hopper,grace@example.com,Engineer,ENG,BER-1,,dev,active,2026-02-01",
            "department",
            "outside your scope",
        ),
        # Someone already in Portal, outside the scope (Mia, in her own department), changed by the file.
        (
            "M001,Mia,Manager,mia@example.com,Boss,SCOPED,BER-1,,dev,active,2026-02-01",
            "employee_number",
            "outside your scope",
        ),
        # A manager outside the scope is answered like nobody.
        (
            "E003,Grace,Hopper,grace@example.com,Engineer,SCOPED,BER-1,M001,dev,active,2026-02-01",
            "manager",
            "inside your scope",
        ),
        # A work email held outside the scope: refused without naming its holder.
        (
            "E003,Grace,Hopper,mia@example.com,Engineer,SCOPED,BER-1,,dev,active,2026-02-01",
            "work_email",
            "someone outside",
        ),
    ],
    ids=["new-person-outside", "existing-person-outside", "manager-outside", "email-outside"],
)
def test_scoped_helpdesk_import_refuses_rows_outside_its_scope_and_writes_nothing(
    client, scoped_helpdesk, org, line, column, reason
):
    client.force_login(scoped_helpdesk)
    mia = Employee.objects.get(employee_number="M001")
    response = admin_import(client, "\n".join([HEADER, *_scoped_rows(line)]).encode(), "hr.csv")
    assert response.status_code == 400
    assert 'name="_confirm"' not in response.content.decode()
    problems = response.context["problems"]
    assert [(p["row"], p["column"]) for p in problems] == [(4, column)]
    assert reason in problems[0]["reason"]
    assert "Mia" not in problems[0]["reason"]
    assert not Employee.objects.filter(employee_number__in=["E001", "E002", "E003"]).exists()
    mia.refresh_from_db()
    assert mia.title != "Boss" and mia.department.code != "SCOPED"


def test_scoped_helpdesk_import_is_checked_again_at_confirm(client, scoped_helpdesk, scope_department, org):
    """The scope shrinks between preview and confirm: the confirm step refuses the file, nothing written."""
    from accounts.models import AdminScope
    from accounts.services.scopes import admin_scope_save
    from accounts.tests.factories import DepartmentFactory

    client.force_login(scoped_helpdesk)
    preview = admin_import(client, "\n".join([HEADER, *_scoped_rows()]).encode(), "hr.csv")
    assert preview.status_code == 302
    admin_scope_save(
        scope=AdminScope.objects.get(user=scoped_helpdesk),
        departments=[DepartmentFactory()],
        locations=[],
        acting_user=None,
    )
    response = client.post(preview["Location"], {"_confirm": "1"}, follow=True)
    assert "outside your scope" in response.content.decode()
    assert not Employee.objects.filter(employee_number__in=["E001", "E002"]).exists()
