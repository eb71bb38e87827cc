"""Constraints of the assets models, on SQLite and PostgreSQL.

Each rule: the database refuses the bad row, and model validation refuses it with the
constraint's `violation_error_message`.
"""

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import DataError, IntegrityError, transaction
from django.db.models import ProtectedError

from accounts.tests.factories import ApplicationFactory, EmployeeFactory, RoleFactory
from assets.models import AssetCheckout, AssetModel, AssetStatus, HardwareAsset, License, RoleKitItem
from assets.tests.factories import AssetModelFactory, HardwareAssetFactory, LicenseFactory

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 3, 1, 9, 0, tzinfo=datetime.UTC)
HOLDER_MESSAGE = "An assigned or pending-return asset needs a holder, and any other status must have none."


def assert_db_refuses(instance, errors=(IntegrityError,)):
    with pytest.raises(errors), transaction.atomic():
        instance.save()


def messages_of(call) -> list[str]:
    with pytest.raises(ValidationError) as exc:
        call()
    return exc.value.messages


# --- AssetModel -------------------------------------------------------------------------


def test_asset_model_name_is_unique_per_manufacturer():
    AssetModel.objects.create(manufacturer="Apple", name="MacBook Air 13", category="laptop")
    duplicate = AssetModel(manufacturer="Apple", name="MacBook Air 13", category="laptop")

    assert "This manufacturer already has a model with this name." in messages_of(duplicate.validate_constraints)
    assert_db_refuses(duplicate)
    AssetModel.objects.create(manufacturer="Other", name="MacBook Air 13", category="laptop")


# --- HardwareAsset ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [AssetStatus.ASSIGNED, AssetStatus.PENDING_RETURN])
def test_held_asset_needs_a_holder(status):
    asset = HardwareAssetFactory.build(model=AssetModelFactory(), status=status, assigned_to=None)

    assert HOLDER_MESSAGE in messages_of(asset.validate_constraints)
    assert_db_refuses(asset)


@pytest.mark.parametrize(
    "status",
    [AssetStatus.IN_STOCK, AssetStatus.IN_TRANSIT, AssetStatus.IN_REPAIR, AssetStatus.RETIRED, AssetStatus.LOST],
)
def test_asset_not_held_has_no_holder(status):
    asset = HardwareAssetFactory.build(model=AssetModelFactory(), status=status, assigned_to=EmployeeFactory())

    assert HOLDER_MESSAGE in messages_of(asset.validate_constraints)
    assert_db_refuses(asset)


@pytest.mark.parametrize("status", [AssetStatus.ASSIGNED, AssetStatus.PENDING_RETURN])
def test_held_asset_with_holder_is_valid(status):
    asset = HardwareAssetFactory.build(model=AssetModelFactory(), status=status, assigned_to=EmployeeFactory())
    asset.full_clean()
    asset.save()


def test_asset_purchase_cost_cannot_be_negative():
    asset = HardwareAssetFactory.build(model=AssetModelFactory(), purchase_cost=Decimal("-0.01"))

    assert "Purchase cost cannot be negative." in messages_of(asset.validate_constraints)
    assert_db_refuses(asset)


def test_asset_warranty_cannot_end_before_purchase():
    asset = HardwareAssetFactory.build(
        model=AssetModelFactory(), purchase_date=datetime.date(2025, 3, 1), warranty_end=datetime.date(2025, 2, 28)
    )

    assert "Warranty cannot end before the purchase date." in messages_of(asset.validate_constraints)
    assert_db_refuses(asset)


def test_asset_warranty_without_purchase_date_is_valid():
    asset = HardwareAssetFactory.build(model=AssetModelFactory(), purchase_date=None)
    asset.full_clean()


@pytest.mark.parametrize("field", ["asset_tag", "serial"])
def test_asset_tag_and_serial_are_unique(field):
    existing = HardwareAssetFactory()
    duplicate = HardwareAssetFactory.build(model=existing.model, **{field: getattr(existing, field)})
    assert_db_refuses(duplicate)


# --- AssetCheckout ----------------------------------------------------------------------


def test_one_open_checkout_per_asset():
    asset = HardwareAssetFactory()
    AssetCheckout.objects.create(asset=asset, employee=EmployeeFactory(), checked_out_at=NOW)
    second = AssetCheckout(asset=asset, employee=EmployeeFactory(), checked_out_at=NOW)

    assert "This asset is already checked out." in messages_of(second.validate_constraints)
    assert_db_refuses(second)


def test_closed_checkouts_of_an_asset_may_repeat():
    asset = HardwareAssetFactory()
    employee = EmployeeFactory()
    for day in (1, 2):
        closed = AssetCheckout(
            asset=asset,
            employee=employee,
            checked_out_at=NOW,
            checked_in_at=NOW + datetime.timedelta(days=day),
        )
        closed.full_clean()
        closed.save()
    open_one = AssetCheckout(asset=asset, employee=employee, checked_out_at=NOW + datetime.timedelta(days=3))
    open_one.full_clean()
    open_one.save()

    assert asset.checkouts.count() == 3


def test_checkin_cannot_precede_checkout():
    checkout = AssetCheckout(
        asset=HardwareAssetFactory(),
        employee=EmployeeFactory(),
        checked_out_at=NOW,
        checked_in_at=NOW - datetime.timedelta(seconds=1),
    )

    assert "Check-in cannot be before check-out." in messages_of(checkout.validate_constraints)
    assert_db_refuses(checkout)


# --- RoleKitItem ------------------------------------------------------------------------


def test_role_kit_has_one_line_per_model():
    role, model = RoleFactory(), AssetModelFactory()
    RoleKitItem.objects.create(role=role, asset_model=model)
    duplicate = RoleKitItem(role=role, asset_model=model, quantity=2)

    assert "This model is already in the role's kit; change its quantity instead." in messages_of(
        duplicate.validate_constraints
    )
    assert_db_refuses(duplicate)


def test_role_kit_quantity_is_at_least_one():
    item = RoleKitItem(role=RoleFactory(), asset_model=AssetModelFactory(), quantity=0)

    assert "Quantity must be at least 1." in messages_of(item.validate_constraints)
    assert_db_refuses(item)


# --- License ----------------------------------------------------------------------------


@pytest.mark.parametrize("days_after_start", [0, -1])
def test_license_renewal_must_follow_the_start(days_after_start):
    start = datetime.date(2026, 1, 1)
    license_ = LicenseFactory.build(
        application=ApplicationFactory(),
        start_date=start,
        renewal_date=start + datetime.timedelta(days=days_after_start),
    )

    assert "Renewal date must be after the start date." in messages_of(license_.validate_constraints)
    assert "Renewal date must be after the start date." in messages_of(license_.full_clean)
    assert_db_refuses(license_)


def test_license_cost_per_seat_cannot_be_negative():
    license_ = LicenseFactory()
    license_.cost_per_seat = Decimal("-1.00")

    assert "Cost per seat cannot be negative." in messages_of(license_.validate_constraints)
    assert_db_refuses(license_)


@pytest.mark.parametrize("currency", ["eur", "E1R", "EU"])
def test_license_currency_is_a_three_letter_code_in_the_database(currency):
    license_ = LicenseFactory()
    license_.currency = currency

    assert "Currency must be a three-letter ISO 4217 code, e.g. EUR." in messages_of(license_.validate_constraints)
    assert_db_refuses(license_)


def test_license_currency_of_four_letters_is_refused_on_every_database():
    # PostgreSQL refuses the length (varchar(3)); SQLite ignores it, so the check constraint must.
    license_ = LicenseFactory()
    license_.currency = "EURO"

    assert_db_refuses(license_, errors=(IntegrityError, DataError))


def test_license_clean_uppercases_the_currency():
    license_ = LicenseFactory()
    license_.currency = "usd"
    license_.full_clean()
    license_.save()

    assert License.objects.get(pk=license_.pk).currency == "USD"


def test_license_annual_cost_is_seats_times_price():
    assert LicenseFactory.build(seats_purchased=12, cost_per_seat=Decimal("7.50")).annual_cost == Decimal("90.00")


def test_license_contract_number_is_unique():
    existing = LicenseFactory()
    assert_db_refuses(LicenseFactory.build(application=existing.application, contract_number=existing.contract_number))


def test_asset_holder_is_protected_from_deletion():
    asset = HardwareAssetFactory(status=AssetStatus.ASSIGNED, assigned_to=EmployeeFactory())
    with pytest.raises(ProtectedError), transaction.atomic():
        asset.assigned_to.delete()
    assert HardwareAsset.objects.filter(pk=asset.pk, assigned_to__isnull=False).exists()
