"""Hardware and license imports, next to the HR import they share `PortalResource` with
(`accounts/tests/test_imports.py`): natural keys, status rules, all rows or none."""

import pytest
import tablib

from accounts.models import Employee
from accounts.tests.factories import (
    ApplicationFactory,
    DepartmentFactory,
    EmployeeFactory,
    LocationFactory,
    RoleFactory,
)
from assets.models import AssetStatus, HardwareAsset, License
from assets.resources import HardwareAssetResource, LicenseResource
from assets.services import asset_check_out
from assets.tests.factories import AssetModelFactory, HardwareAssetFactory

pytestmark = pytest.mark.django_db

HEADER = "employee_number,first_name,last_name,work_email,title,department,location,manager,role,status,start_date"

ASSET_HEADER = "asset_tag,serial,model,status,assigned_to,location,purchase_date,purchase_cost,warranty_end,notes"


@pytest.fixture
def org():
    DepartmentFactory(code="ENG", name="Engineering")
    LocationFactory(code="BER-1", name="Berlin")
    RoleFactory(code="dev", name="Developer")
    EmployeeFactory(employee_number="M001", first_name="Mia", last_name="Manager", work_email="mia@example.com")


def csv_dataset(*lines, header=HEADER):
    return tablib.Dataset().load("\n".join([header, *lines]) + "\n", format="csv")


def run_import(resource, dataset, user=None, dry_run=False):
    return resource.import_data(dataset, dry_run=dry_run, user=user, file_name="hr.csv")


def errors_of(result):
    """{row number: {column: [messages]}} for every invalid row."""
    return {row.number: row.error_dict for row in result.invalid_rows}


def test_hardware_import_by_model_name_and_status_rules(org, it_admin):
    AssetModelFactory(manufacturer="Apple", name="MacBook Air 13")
    holder = Employee.objects.get(employee_number="M001")
    held = HardwareAssetFactory(asset_tag="HELD-1")
    asset_check_out(asset=held, employee=holder, acting_user=it_admin)

    good = csv_dataset(
        "NEW-1,S-1,Apple|MacBook Air 13,,M001,BER-1,2026-01-01,1499.00,2029-01-01,",
        "NEW-2,S-2,Apple | MacBook Air 13,in_repair,,,,,,",
        header=ASSET_HEADER,
    )
    result = run_import(HardwareAssetResource(), good, user=it_admin)
    assert not result.has_validation_errors(), errors_of(result)
    new = HardwareAsset.objects.get(asset_tag="NEW-1")
    assert (new.status, new.assigned_to) == (AssetStatus.IN_STOCK, None)  # assigned_to is never imported
    assert HardwareAsset.objects.get(asset_tag="NEW-2").status == AssetStatus.IN_REPAIR

    bad = csv_dataset(
        "NEW-3,S-3,Apple|MacBook Air 13,assigned,M001,,,,,",
        f"HELD-1,{held.serial},{held.model.manufacturer}|{held.model.name},in_stock,,,,,,",
        "NEW-4,S-4,Apple|MacBook Pro,,,,,,,",
        "NEW-5,S-5,MacBook Air 13,,,,,,,",
        header=ASSET_HEADER,
    )
    result = run_import(HardwareAssetResource(), bad, user=it_admin)
    errors = errors_of(result)
    assert "check-outs go through the check-out action" in str(errors[1]["status"])
    assert "held by someone" in str(errors[2]["status"])
    assert "No asset model 'MacBook Pro' by 'Apple'" in str(errors[3]["model"])
    assert "Manufacturer|Model name" in str(errors[4]["model"])
    held.refresh_from_db()
    assert (held.status, held.assigned_to) == (AssetStatus.ASSIGNED, holder)
    assert not HardwareAsset.objects.filter(asset_tag__in=["NEW-3", "NEW-4", "NEW-5"]).exists()


def test_held_asset_reimported_unchanged_is_fine_and_export_names_holder(org, it_admin):
    holder = Employee.objects.get(employee_number="M001")
    held = HardwareAssetFactory(asset_tag="HELD-2")
    asset_check_out(asset=held, employee=holder, acting_user=it_admin)
    exported = HardwareAssetResource().export()
    assert exported.dict[0]["assigned_to"] == "M001"
    assert exported.dict[0]["model"] == f"{held.model.manufacturer}|{held.model.name}"
    result = run_import(HardwareAssetResource(), tablib.Dataset().load(exported.csv, format="csv"), user=it_admin)
    assert not result.has_validation_errors(), errors_of(result)
    blank_status = csv_dataset(f"HELD-2,{held.serial},,,,,,,,", header=ASSET_HEADER)
    blank_status_result = run_import(HardwareAssetResource(), blank_status, user=it_admin)
    assert "model" in errors_of(blank_status_result)[1]  # a required reference may not be blank
    assert "status" not in errors_of(blank_status_result)[1]  # a blank status keeps the current one


def test_license_import_by_application_name(org, it_admin):
    ApplicationFactory(name="Figma")
    header = (
        "contract_number,application,vendor,seats_purchased,seats_used,cost_per_seat,currency,start_date,renewal_date"
    )
    data = csv_dataset("FIG-1,Figma,Figma Inc,25,999,12.00,usd,2026-01-01,2027-01-01", header=header)
    result = run_import(LicenseResource(), data, user=it_admin)
    assert not result.has_validation_errors(), errors_of(result)
    license_ = License.objects.get(contract_number="FIG-1")
    assert (license_.application.name, license_.seats_purchased, license_.currency) == ("Figma", 25, "USD")
    bad = csv_dataset("FIG-2,Sketch,X,5,,1.00,EUR,2026-01-01,2025-01-01", header=header)
    errors = errors_of(run_import(LicenseResource(), bad, user=it_admin))
    assert "No application with name 'Sketch'" in str(errors[1]["application"])
    assert "Renewal date must be after the start date" in str(errors[1])


# --- A scoped helpdesk's hardware import: assets inside its scope only, all rows or none --------------------


@pytest.fixture
def berlin_desk(groups, org):
    """A helpdesk login limited to the Berlin office."""
    from accounts.models import AdminScope, Location
    from accounts.services.scopes import admin_scope_save
    from accounts.tests.factories import UserFactory

    user = UserFactory(username="berlin-desk", is_staff=True)
    user.groups.add(groups["IT helpdesk"])
    admin_scope_save(
        scope=AdminScope(user=user), departments=[], locations=[Location.objects.get(code="BER-1")], acting_user=None
    )
    return user


def test_scoped_hardware_import_writes_assets_kept_inside_the_scope(berlin_desk):
    AssetModelFactory(manufacturer="Apple", name="MacBook Air 13")
    good = csv_dataset("NEW-1,S-1,Apple|MacBook Air 13,,,BER-1,,,,", header=ASSET_HEADER)
    result = run_import(HardwareAssetResource(), good, user=berlin_desk)
    assert not result.has_validation_errors(), errors_of(result)
    assert HardwareAsset.objects.get(asset_tag="NEW-1").location.code == "BER-1"


def test_scoped_hardware_import_refuses_rows_outside_the_scope_and_writes_nothing(berlin_desk):
    AssetModelFactory(manufacturer="Apple", name="MacBook Air 13")
    elsewhere = HardwareAssetFactory(asset_tag="LON-1", notes="")  # kept at another office
    LocationFactory(code="LON-1", name="London")
    bad = csv_dataset(
        "NEW-1,S-1,Apple|MacBook Air 13,,,BER-1,,,,",  # fine on its own
        "NEW-2,S-2,Apple|MacBook Air 13,,,LON-1,,,,",  # a new asset kept outside the scope
        "NEW-3,S-3,Apple|MacBook Air 13,,,,,,,",  # kept nowhere: outside too
        f"LON-1,{elsewhere.serial},{elsewhere.model.manufacturer}|{elsewhere.model.name},,,BER-1,,,,Moved",
        header=ASSET_HEADER,
    )
    result = run_import(HardwareAssetResource(), bad, user=berlin_desk)
    errors = errors_of(result)
    assert sorted(errors) == [2, 3, 4]
    assert "would be outside your scope (locations Berlin)" in str(errors[2])
    assert "would be outside your scope" in str(errors[3])
    assert "LON-1" in str(errors[4]) and "is outside your scope" in str(errors[4])
    assert not HardwareAsset.objects.filter(asset_tag__startswith="NEW-").exists()
    elsewhere.refresh_from_db()
    assert elsewhere.notes == "" and elsewhere.location_id != berlin_desk.admin_scope.locations.get().pk
