"""HR files as HR systems export them: encodings, delimiters, headers, dates, names or codes, refusals.

Each fixture is a file as a real export writes it (Personio, BambooHR, Workday, SAP, Excel's own
CSV in Windows-1252 with semicolons, a formatted XLSX). The files go through the admin's upload,
preview and confirm pages, as a person uses them; each refusal is checked for its exact message.
"""

import datetime
import io

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from openpyxl.styles import Font, PatternFill

from accounts.hr_import import employee_import_plan
from accounts.models import Employee, EmployeeImport
from accounts.tests.factories import (
    ApplicationFactory,
    DepartmentFactory,
    EmployeeFactory,
    LocationFactory,
    RoleFactory,
)
from offboarding.models import ChecklistKind, ChecklistRun
from portal.models import AuditEvent
from portal.tabular import table_read

pytestmark = pytest.mark.django_db

IMPORT_URL = "admin:accounts_employee_import"


@pytest.fixture
def org():
    eng = DepartmentFactory(code="ENG", name="Engineering")
    DepartmentFactory(code="FIN", name="Finance")
    berlin = LocationFactory(code="BER-1", name="Berlin HQ")
    LocationFactory(code="PRG-1", name="Praha")
    dev = RoleFactory(code="dev", name="Developer")
    RoleFactory(code="analyst", name="Analyst")
    dev.birthrights.create(application=ApplicationFactory(name="GitHub"), access_level="user")
    return EmployeeFactory(
        employee_number="M001",
        first_name="Mia",
        last_name="Manager",
        work_email="mia@example.com",
        department=eng,
        location=berlin,
        role=dev,
    )


def upload(client, content: bytes, name="hr.csv", encoding="auto", date_format="iso", follow=False):
    return client.post(
        reverse(IMPORT_URL),
        {"import_file": SimpleUploadedFile(name, content), "encoding": encoding, "date_format": date_format},
        follow=follow,
    )


def confirm(client, response):
    assert response.status_code == 302, response.content.decode()[:3000]
    detail = response["Location"]
    page = client.get(detail)
    assert page.status_code == 200
    client.post(detail, {"_confirm": "1"})
    return EmployeeImport.objects.get(pk=int(detail.rstrip("/").split("/")[-1])), page


def problems(response) -> list[str]:
    assert response.status_code == 400, response.status_code
    return [p["text"] for p in response.context["problems"]]


# --- Files as people save them -----------------------------------------------------------------

PERSONIO = (
    "ID;First name;Last name;Email;Position;Department;Office;Supervisor;Hire date;Employment type;Status\r\n"
    "703101 ;Grace ; Hopper;grace.hopper@example.com;Engineer ; Engineering ;Berlin HQ;M001;01.03.2027;"
    "Full-time;Active\r\n"
    "703102;Jürgen;Müller;juergen.mueller@example.com;Analyst;finance;ber-1;703101;15.03.2027;Part-time;onboarding\r\n"
    ";;;;;;;;;;\r\n"
    "\r\n"
)


def test_excel_csv_in_windows_1252_with_semicolons_crlf_padded_cells_and_blank_rows(client, it_admin, org):
    client.force_login(it_admin)
    data = PERSONIO.encode("cp1252")
    record, page = confirm(client, upload(client, data, name="personio.csv", date_format="dmy"))
    assert "read as CSV, Windows-1252, semicolon-separated" in page.content.decode()
    assert record.status == "done", record.problems
    grace = Employee.objects.get(employee_number="703101")  # trimmed: "703101 " is found by its number
    assert (grace.first_name, grace.last_name, grace.title) == ("Grace", "Hopper", "Engineer")
    assert (grace.department.code, grace.location.code, grace.manager.employee_number) == ("ENG", "BER-1", "M001")
    assert grace.start_date == datetime.date(2027, 3, 1)  # day first, as declared
    juergen = Employee.objects.get(employee_number="703102")
    assert (juergen.first_name, juergen.last_name) == ("Jürgen", "Müller")
    assert (juergen.manager, juergen.status, juergen.employment_type) == (grace, "pre_hire", "part_time")
    runs = ChecklistRun.objects.filter(kind=ChecklistKind.JOIN, employee__in=[grace, juergen])
    assert runs.count() == 2 and {r.started_by for r in runs} == {it_admin}
    assert grace.history.get().history_user == it_admin
    assert AuditEvent.objects.filter(action=AuditEvent.Action.IMPORT, target_id=str(grace.pk)).count() == 1
    assert record.rows == {}  # the cells are gone once imported


def test_utf8_with_bom_and_windows_1250_are_read_without_garbling(client, it_admin, org):
    client.force_login(it_admin)
    text = (
        "Employee Number,First Name,Last Name,Work Email,Location,Start Date\n"
        "P1,Łukasz,Dvořák,lukasz@example.com,Praha,2027-03-01\n"
        "P2,Zdeněk,Šťastný,zdenek@example.com,Praha,2027-03-01\n"
    )
    for data in (b"\xef\xbb\xbf" + text.encode("utf-8"), text.encode("cp1250")):
        table = table_read(data, file_name="x.csv")
        assert table.headers[0] == "Employee Number"  # no BOM left in the first header
        assert table.rows[0].cells[1:3] == ["Łukasz", "Dvořák"]
    assert table.encoding == "cp1250"


def test_declared_encoding_that_would_garble_is_refused(client, it_admin, org):
    client.force_login(it_admin)
    data = "Employee number,First name,Last name,Work email,Start date\nE1,Jürgen,Müller,j@example.com,2027-03-01\n"
    response = upload(client, data.encode("utf-8"), encoding="cp1252")
    assert problems(response) == [
        "The file is UTF-8 (it reads as “Jürgen” in UTF-8), not Windows-1252 as "
        "chosen: reading it as chosen would garble every accented letter. Choose UTF-8 or Detect as the encoding."
    ]
    assert "Traceback" not in response.content.decode()


def test_workday_headers_and_month_first_dates(client, it_admin, org):
    client.force_login(it_admin)
    data = (
        b"Employee_ID,Legal First Name,Legal Last Name,Work Email Address,Business Title,Supervisor ID,Hire Date,"
        b"Worker Type\n"
        b"W-1,Katherine,Johnson,kj@example.com,Analyst,W-2,03/01/2027,Full time\n"
        b"W-2,Dorothy,Vaughan,dv@example.com,Lead,M001,03/15/2027,Contractor\n"
    )
    record, _ = confirm(client, upload(client, data, date_format="mdy"))
    assert record.status == "done", record.problems
    katherine = Employee.objects.get(employee_number="W-1")
    assert katherine.start_date == datetime.date(2027, 3, 1)
    assert katherine.manager.employee_number == "W-2"  # a manager listed later in the same file


def test_formatted_xlsx_with_date_cells_numbers_and_zero_padded_ids(client, it_admin, org):
    client.force_login(it_admin)
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(
        ["Employee #", "First Name", "Last Name", "Work Email", "Department", "Location", "Role", "Hire Date  "]
    )
    sheet.append(
        [123, "Ada ", "Lovelace", "ADA@example.com", "Engineering", "BER-1", "Developer", datetime.datetime(2027, 3, 1)]
    )
    sheet["A2"].number_format = "000000"
    for cell in sheet[1]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="FFFF00")
    sheet.append([])
    buffer = io.BytesIO()
    workbook.save(buffer)
    record, _ = confirm(client, upload(client, buffer.getvalue(), name="bamboo.xlsx"))
    assert record.status == "done", record.problems
    ada = Employee.objects.get(employee_number="000123")
    assert (ada.first_name, ada.work_email, ada.role.code, ada.start_date) == (
        "Ada",
        "ada@example.com",
        "dev",
        datetime.date(2027, 3, 1),
    )


# --- Refusals, each with its exact message --------------------------------------------------------

HEADER = "Employee number,First name,Last name,Work email,Department,Location,Manager,Role,Status,Start date\n"


def refused(client, body: str, **kwargs) -> list[str]:
    response = upload(client, (HEADER + body).encode(), **kwargs)
    found = problems(response)
    html = response.content.decode()
    assert "Traceback" not in html and "import_id_fields" not in html and "Error" not in html.replace("errornote", "")
    assert not Employee.objects.exclude(employee_number="M001").exists()
    assert not EmployeeImport.objects.exists()
    return found


def test_ambiguous_date_without_declared_format_is_refused_with_the_row(client, it_admin, org):
    client.force_login(it_admin)
    assert refused(client, "E1,Ada,Lovelace,ada@example.com,ENG,BER-1,,dev,,01/03/2027\n") == [
        "Row 2, column “Start date”, value “01/03/2027”: This could be 1 March 2027 (day first) or 3 January 2027 "
        "(month first), and Portal does not guess. Choose the file's date format on the import form (Day first or "
        "Month first), or write the date as YYYY-MM-DD."
    ]


def test_unknown_and_missing_headers_are_named(client, it_admin, org):
    client.force_login(it_admin)
    response = upload(client, b"Employee number,First name,Last name,Salary,Start date\nE1,A,B,100,2027-01-01\n")
    (message,) = problems(response)
    assert message.startswith(
        "Row 1, column “Salary”: Portal does not know the column “Salary” (column D). The columns it reads are: "
        "Employee number, First name, Last name, Preferred name, Work email,"
    )
    response = upload(client, b"Employee number,First name,Last name,Start date\nE1,A,B,2027-01-01\n")
    assert problems(response) == [
        "Row 1: The file has no column for “Work email”, which every person needs. Columns found: Employee number, "
        "First name, Last name, Start date."
    ]


def test_unknown_location_lists_the_valid_codes_and_names(client, it_admin, org):
    client.force_login(it_admin)
    assert refused(client, "E1,Ada,Lovelace,ada@example.com,ENG,Paris,,dev,,2027-03-01\n") == [
        "Row 2, column “Location”, value “Paris”: No location has this code or name. Valid codes (names): "
        "BER-1 (Berlin HQ), PRG-1 (Praha)."
    ]


def test_bad_status_lists_the_valid_values(client, it_admin, org):
    client.force_login(it_admin)
    assert refused(client, "E1,Ada,Lovelace,ada@example.com,ENG,BER-1,,dev,Retired,2027-03-01\n") == [
        "Row 2, column “Status”, value “Retired”: This is not a status. Valid: Pre-hire (pre_hire), Active (active), "
        "Leave of absence (leave_of_absence), Terminated (terminated)."
    ]


def test_self_management_and_manager_cycles_are_refused_with_the_rows(client, it_admin, org):
    client.force_login(it_admin)
    assert refused(client, "E1,Ada,Lovelace,ada@example.com,ENG,BER-1,E1,dev,,2027-03-01\n") == [
        "Row 2, column “Manager”, value “E1”: This is the person of this row: nobody can manage themselves."
    ]
    body = (
        "E1,Ada,Lovelace,ada@example.com,ENG,BER-1,E2,dev,,2027-03-01\n"
        "E2,Alan,Turing,alan@example.com,ENG,BER-1,E3,dev,,2027-03-01\n"
        "E3,Grace,Hopper,grace@example.com,ENG,BER-1,E1,dev,,2027-03-01\n"
    )
    assert refused(client, body) == [
        "Row 2, column “Manager”, value “E2”: Rows 2, 3 and 4 make a management loop: E1 → E2 → E3 → E1 (each "
        "reports to the next). Someone in the loop must report to a manager outside it."
    ]


def test_a_loop_through_a_manager_already_in_portal_is_refused(client, it_admin, org):
    client.force_login(it_admin)
    EmployeeFactory(employee_number="B1", work_email="b1@example.com", manager=org)
    body = "M001,Mia,Manager,mia@example.com,ENG,BER-1,B1,dev,,2024-01-01\n"
    response = upload(client, (HEADER + body).encode())
    assert problems(response) == [
        "Row 2, column “Manager”, value “B1”: Row 2 make a management loop: M001 → B1 → M001 (each reports to the "
        "next). Someone in the loop must report to a manager outside it."
    ]


def test_duplicates_in_the_file_name_both_rows_and_a_taken_email_names_its_holder(client, it_admin, org):
    client.force_login(it_admin)
    body = (
        "E1,Ada,Lovelace,ada@example.com,ENG,BER-1,,dev,,2027-03-01\n"
        "E2,Alan,Turing,mia@example.com,ENG,BER-1,,dev,,2027-03-01\n"
        "E1,Ada,Byron,ada.byron@example.com,ENG,BER-1,,dev,,2027-03-01\n"
    )
    assert refused(client, body) == [
        "Row 3, column “Work email”, value “mia@example.com”: This is already the work email of Mia Manager (M001), "
        "who is not the person of this row. Correct the email, or change theirs in Portal first.",
        "Row 4, column “Employee number”, value “E1”: Rows 2 and 4 both have this employee number; each person must "
        "appear once and each employee number belong to one person. Remove one of the two rows or correct it.",
    ]


# --- Preview, moves, template, leftovers ----------------------------------------------------------


def test_preview_counts_people_and_runs_and_a_move_is_applied(client, it_admin, org):
    client.force_login(it_admin)
    ada = EmployeeFactory(employee_number="E1", work_email="ada@example.com", department=DepartmentFactory(code="OLD"))
    body = (
        "E1,Ada,Lovelace,ada@example.com,FIN,BER-1,M001,analyst,active,2024-01-15\n"
        "E2,Alan,Turing,alan@example.com,ENG,BER-1,E1,dev,,2027-03-01\n"
    )
    response = upload(client, (HEADER + body).encode())
    record, page = confirm(client, response)
    text = " ".join(page.content.decode().split())
    assert (
        "2 rows: 1 person to create, 1 to update, 0 unchanged. The import will start <strong>1 join run</strong> "
        "and <strong>1 move run</strong>." in text
    )
    assert record.status == "done", record.problems
    ada.refresh_from_db()
    assert (ada.department.code, ada.role.code, ada.manager.employee_number) == ("FIN", "analyst", "M001")
    assert ChecklistRun.objects.filter(employee=ada, kind=ChecklistKind.MOVE).count() == 1
    assert ChecklistRun.objects.filter(employee__employee_number="E2", kind=ChecklistKind.JOIN).count() == 1


def test_templates_carry_the_headers_and_the_valid_codes(client, it_admin, org):
    client.force_login(it_admin)
    csv_file = client.get(reverse("admin:accounts_employee_import_template", args=["csv"]))
    assert csv_file.content.decode("utf-8-sig").splitlines()[0].startswith("Employee number,First name,Last name")
    xlsx = client.get(reverse("admin:accounts_employee_import_template", args=["xlsx"]))
    workbook = openpyxl.load_workbook(io.BytesIO(xlsx.content))
    values = {row[0]: row[1] for row in workbook["Valid values"].iter_rows(values_only=True) if row and row[0]}
    assert values["Location"] == "BER-1 = Berlin HQ; PRG-1 = Praha"
    # The template, filled in, imports as it is.
    table = table_read(xlsx.content, file_name="t.xlsx")
    assert employee_import_plan(table).ok


def test_no_uploaded_file_is_left_in_the_temp_folder(client, it_admin, org, settings, tmp_path, monkeypatch):
    """Neither the upload handler's spool file nor anything else (django-import-export's TempFolderStorage
    wrote every previewed file to the system's temp folder) is left behind, previewed or abandoned."""
    import tempfile

    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0  # every upload spooled to disk
    client.force_login(it_admin)
    body = "E1,Ada,Lovelace,ada@example.com,ENG,BER-1,,dev,,2027-03-01\n"
    response = upload(client, (HEADER + body).encode())
    assert response.status_code == 302
    assert list(tmp_path.iterdir()) == []
    client.post(response["Location"], {"_abandon": "1"})
    record = EmployeeImport.objects.get()
    assert (record.status, record.rows) == ("abandoned", {})
    upload(client, (HEADER + "bad").encode())
    assert list(tmp_path.iterdir()) == []


def test_a_large_file_is_imported_by_a_worker_with_progress(client, it_admin, org, settings):
    settings.HR_IMPORT = {**settings.HR_IMPORT, "BACKGROUND_ROWS": 2}
    client.force_login(it_admin)
    body = "".join(f"E{i},P{i},L{i},p{i}@example.com,ENG,Berlin HQ,M001,dev,,2027-03-01\n" for i in range(3))
    response = upload(client, (HEADER + body).encode())
    detail = response["Location"]
    enqueued = []
    from accounts.services import hr_import

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hr_import, "enqueue_on_commit", lambda path, *ids, **options: enqueued.append((path, ids)))
        client.post(detail, {"_confirm": "1"})
    record = EmployeeImport.objects.get()
    assert record.status == "queued" and enqueued == [("accounts.tasks.employee_import_run", (record.pk,))]
    page = client.get(detail).content.decode()
    assert '<meta http-equiv="refresh" content="2">' in page and "<progress" in page
    assert client.get(f"{detail}status/").json()["status"] == "queued"
    assert not Employee.objects.filter(employee_number="E0").exists()
    from accounts.tasks import employee_import_run

    assert employee_import_run(record.pk) == "done"
    assert employee_import_run(record.pk) == "done"  # a second delivery does nothing
    assert Employee.objects.filter(employee_number__startswith="E").count() == 3
    assert ChecklistRun.objects.filter(kind=ChecklistKind.JOIN).count() == 3
    state = client.get(f"{detail}status/").json()
    assert (state["status"], state["percent"], state["summary"]["join_runs"]) == ("done", 100, 3)


def test_someone_elses_import_is_not_found(client, it_admin, helpdesk, org):
    client.force_login(it_admin)
    body = "E1,Ada,Lovelace,ada@example.com,ENG,BER-1,,dev,,2027-03-01\n"
    detail = upload(client, (HEADER + body).encode())["Location"]
    client.force_login(helpdesk)
    assert client.get(detail).status_code == 404
    assert client.get(f"{detail}status/").status_code == 404


SAP = (
    "Personnel Number;First name;Last name;E-Mail;Org. unit;Location;Entry date;Employee status\r\n"
    "00004711;Zdeněk;Šťastný;zdenek.stastny@example.com;ENG;Praha;01.04.2027;Pre-hire\r\n"
    "00004712;Łucja;Żółtowska;lucja@example.com;Finance;PRG-1;02.04.2027;\r\n"
)


def test_sap_export_in_windows_1250_with_semicolons_and_leading_zero_numbers(client, it_admin, org):
    client.force_login(it_admin)
    record, page = confirm(client, upload(client, SAP.encode("cp1250"), name="sap.csv", date_format="dmy"))
    assert "read as CSV, Windows-1250, semicolon-separated" in page.content.decode()
    assert record.status == "done", record.problems
    zdenek = Employee.objects.get(employee_number="00004711")
    assert (zdenek.first_name, zdenek.last_name, zdenek.location.code) == ("Zdeněk", "Šťastný", "PRG-1")
    assert zdenek.start_date == datetime.date(2027, 4, 1)
    assert Employee.objects.get(employee_number="00004712").department.code == "FIN"


BAMBOO = (
    "Employee #,First Name,Last Name,Work Email,Job Title,Department,Location,Reporting to,Hire Date,Status\r\n"
    '"B-7","Hedy","Lamarr","hedy@example.com","Inventor, Senior","Engineering","Berlin HQ","M001","25/12/2027",'
    '"Active"\r\n'
    '"B-8","Frances","Allen","frances@example.com","Engineer","Engineering","Berlin HQ","B-7","2027-12-26",""\r\n'
)


def test_bamboohr_export_with_quoted_commas_and_an_unambiguous_day_first_date(client, it_admin, org):
    client.force_login(it_admin)
    record, _ = confirm(client, upload(client, BAMBOO.encode(), name="bamboo.csv"))
    assert record.status == "done", record.problems
    hedy = Employee.objects.get(employee_number="B-7")
    assert (hedy.title, hedy.start_date, hedy.status) == ("Inventor, Senior", datetime.date(2027, 12, 25), "active")
    assert Employee.objects.get(employee_number="B-8").manager == hedy


def test_excel_unicode_text_is_utf16_and_tab_separated(client, it_admin, org):
    text = (
        "Employee number\tFirst name\tLast name\tWork email\tStart date\r\n"
        "U1\tRenée\tDupré\tr@example.com\t2027-03-01\r\n"
    )
    table = table_read(b"\xff\xfe" + text.encode("utf-16-le"), file_name="unicode.txt")
    assert table.read_as == "CSV, UTF-16, tab-separated"
    assert table.rows[0].cells[1:3] == ["Renée", "Dupré"]


def test_a_declared_day_first_file_with_a_month_first_date_is_refused(client, it_admin, org):
    client.force_login(it_admin)
    assert refused(client, "E1,Ada,Lovelace,ada@example.com,ENG,BER-1,,dev,,12/25/2027\n", date_format="dmy") == [
        "Row 2, column “Start date”, value “12/25/2027”: Month 25 does not exist. The import form says the day comes "
        "first (DD/MM/YYYY); this date looks month-first: choose “Month first” if the whole file writes dates that way."
    ]


def test_a_terminated_status_and_a_bad_email_are_refused(client, it_admin, org):
    client.force_login(it_admin)
    body = (
        "E1,Ada,Lovelace,ada@example,ENG,BER-1,,dev,,2027-03-01\n"
        "E2,Alan,Turing,alan@example.com,ENG,BER-1,,dev,Terminated,2027-03-01\n"
    )
    assert refused(client, body) == [
        "Row 2, column “Work email”, value “ada@example”: This is not an email address (it should look like "
        "name@example.com).",
        "Row 3, column “Status”, value “Terminated”: Employees cannot be terminated by import: start the leaver "
        "process on their page instead (it cuts access and collects hardware).",
    ]


def test_only_people_who_may_add_and_change_employees_may_import(client, auditor, helpdesk, employee_user, org):
    for user, status in ((auditor, 403), (helpdesk, 200)):
        client.force_login(user)
        assert client.get(reverse(IMPORT_URL)).status_code == status
        assert client.get(reverse("admin:accounts_employee_import_template", args=["csv"])).status_code == status
    client.force_login(employee_user)
    assert client.get(reverse(IMPORT_URL)).status_code == 302  # to the admin's sign-in


def test_junk_uploads_get_a_sentence_not_a_crash(client, it_admin, org):
    client.force_login(it_admin)
    empty = upload(client, b"")
    assert empty.context["form"].errors == {"import_file": ["The submitted file is empty."]}
    assert problems(upload(client, b"\r\n;;;\r\n")) == ["The file has no rows."]
    assert problems(upload(client, b"\xd0\xcf\x11\xe0junk", name="old.xls"))[0].startswith(
        "This is an old-style Excel file (.xls)"
    )
    assert problems(upload(client, b"PK\x03\x04junk", name="x.xlsx")) == [
        "The file looks like an Excel workbook but cannot be opened; it may be damaged."
    ]
    assert client.get(reverse("admin:accounts_employee_import_detail", args=[999999])).status_code == 404
    assert client.get(reverse("admin:accounts_employee_import_template", args=["pdf"])).status_code == 404
    response = client.post(reverse(IMPORT_URL), {"encoding": "klingon", "date_format": "iso"})
    assert response.status_code == 200 and response.context["form"].errors


def test_months_written_as_words_are_read_in_any_declared_format():
    from accounts.hr_import import parse_date

    for text in ("1 Mar 2027", "01-Mar-2027", "March 1, 2027", "2027-03-01 00:00:00"):
        assert parse_date(text, "iso") == datetime.date(2027, 3, 1)
    with pytest.raises(ValueError, match="The year has 2 digits"):
        parse_date("01/03/27", "dmy")


def test_a_preview_left_unconfirmed_is_abandoned_by_the_schedule(client, it_admin, org, settings):
    import importlib

    from django.apps import apps
    from django_q.models import Schedule

    from accounts.tasks import employee_imports_forget_stale

    module = importlib.import_module("accounts.migrations.0010_hr_import_cleanup_schedule")
    module.create_schedule(apps, None)  # idempotent; a database flushed by a transactional test lost the row
    schedule = Schedule.objects.get(name="HR import: forget abandoned previews")
    assert (schedule.func, schedule.minutes) == ("accounts.tasks.employee_imports_forget_stale", 10)
    client.force_login(it_admin)
    upload(client, (HEADER + "E1,Ada,Lovelace,ada@example.com,ENG,BER-1,,dev,,2027-03-01\n").encode())
    assert employee_imports_forget_stale() == 0  # still fresh
    settings.HR_IMPORT = {**settings.HR_IMPORT, "PREVIEW_MINUTES": -1}
    assert employee_imports_forget_stale() == 1
    record = EmployeeImport.objects.get()
    assert (record.status, record.rows) == ("abandoned", {})
