"""Admin exports never write a live formula: Employee, HardwareAsset and AuditEvent, as CSV and XLSX.

Each export goes through the registered admin's export page, as the auditor downloads it; a
value a spreadsheet would run (`=`, `+`, `-`, `@`, tab, carriage return first) comes out as text
with a leading `'`; other text and numbers come out as they are.
"""

import io
from decimal import Decimal

import openpyxl
import pytest
import tablib
from django.contrib import admin
from django.urls import reverse

from accounts.models import Employee
from accounts.tests.factories import EmployeeFactory
from assets.models import HardwareAsset
from assets.tests.factories import HardwareAssetFactory
from portal.audit import audit_record
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db

DANGEROUS = ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"]


def admin_export(client, model, fmt: str) -> bytes:
    """The file the model's admin export page gives for every column of its (first) resource."""
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_export")
    page = client.get(url)
    form = page.context["form"]
    choice = next(value for value, label in form.fields["format"].choices if label.lower() == fmt)
    # The resource this user is given (the employee export depends on who asks: personal data).
    resource_class = admin.site.get_model_admin(model).get_export_resource_classes(page.wsgi_request)[0]
    data = {"format": choice, "resource": "0"}
    data.update({f"{resource_class.__name__.lower()}_{name}": "on" for name in resource_class().fields})
    response = client.post(url, data)
    assert response.status_code == 200, response.content[:500]
    return response.content


def csv_rows(content: bytes) -> list[dict]:
    return tablib.Dataset().load(content.decode("utf-8"), format="csv").dict


def xlsx_rows(content: bytes) -> list[dict]:
    """Rows as {column: openpyxl cell}, so a test sees each cell's type as well as its value."""
    sheet = openpyxl.load_workbook(io.BytesIO(content)).active
    header, *rows = sheet.iter_rows()
    return [{head.value: cell for head, cell in zip(header, row, strict=True)} for row in rows]


def as_read_back(text: str) -> str:
    """XLSX is XML, and an XML reader turns a bare carriage return into a line feed."""
    return text.replace("\r", "\n")


@pytest.fixture
def people(db):
    """One employee per dangerous first name, keyed by it, and one with a normal name."""
    found = {name: EmployeeFactory(first_name=name, last_name="Example") for name in DANGEROUS}
    found["Ada"] = EmployeeFactory(first_name="Ada", last_name="Lovelace")
    return found


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_employee_export_writes_names_as_text(client, auditor, people, fmt):
    client.force_login(auditor)
    content = admin_export(client, Employee, fmt)
    numbers = {employee.employee_number: name for name, employee in people.items()}
    if fmt == "csv":
        first_names = {row["employee_number"]: row["first_name"] for row in csv_rows(content)}
        for number, name in numbers.items():
            assert first_names[number] == (name if name == "Ada" else "'" + name)
    else:
        cells = {row["employee_number"].value: row["first_name"] for row in xlsx_rows(content)}
        for number, name in numbers.items():
            assert cells[number].data_type == "s"
            assert cells[number].value == (name if name == "Ada" else "'" + as_read_back(name))


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_hardware_export_writes_notes_as_text_and_costs_as_numbers(client, auditor, fmt):
    # Costs cannot be negative (a check constraint); portal/tests/test_resources.py shows a negative
    # number stays a number. Here: a cost next to a dangerous note is still a plain number.
    tags = {
        name: HardwareAssetFactory(notes=name, purchase_cost=Decimal("12.50")).asset_tag
        for name in [*DANGEROUS, "spare charger"]
    }
    client.force_login(auditor)
    content = admin_export(client, HardwareAsset, fmt)
    if fmt == "csv":
        rows = {row["asset_tag"]: row for row in csv_rows(content)}
        for name, tag in tags.items():
            assert rows[tag]["notes"] == (name if name == "spare charger" else "'" + name)
        assert rows[tags["-1"]]["purchase_cost"] == "12.50"
    else:
        rows = {row["asset_tag"].value: row for row in xlsx_rows(content)}
        for name, tag in tags.items():
            assert rows[tag]["notes"].data_type == "s"
            assert rows[tag]["notes"].value == (name if name == "spare charger" else "'" + as_read_back(name))
        cost = rows[tags["-1"]]["purchase_cost"]
        assert (cost.data_type, cost.value) == ("n", 12.5)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_audit_log_export_writes_target_names_as_text(client, auditor, people, fmt):
    events = {
        name: audit_record(action=AuditEvent.Action.GRANT, target=employee, detail={"level": "user"}).pk
        for name, employee in people.items()
    }
    client.force_login(auditor)
    content = admin_export(client, AuditEvent, fmt)
    if fmt == "csv":
        reprs = {int(row["id"]): row["target_repr"] for row in csv_rows(content)}
        for name, pk in events.items():
            expected = str(people[name])
            assert reprs[pk] == (expected if name == "Ada" else "'" + expected)
    else:
        cells = {row["id"].value: row["target_repr"] for row in xlsx_rows(content)}
        for name, pk in events.items():
            expected = as_read_back(str(people[name]))
            assert cells[pk].data_type == "s"
            assert cells[pk].value == (expected if name == "Ada" else "'" + expected)
