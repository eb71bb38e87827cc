"""factory_boy factories for assets models."""

import datetime
from decimal import Decimal

import factory

from accounts.tests.factories import ApplicationFactory
from assets import models


class AssetModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.AssetModel

    manufacturer = "Lenovo"
    name = factory.Sequence(lambda n: f"ThinkPad T{n}")
    category = models.AssetCategory.LAPTOP


class HardwareAssetFactory(factory.django.DjangoModelFactory):
    """An asset in stock. To hand one out, use `assets.services.asset_check_out`."""

    class Meta:
        model = models.HardwareAsset

    asset_tag = factory.Sequence(lambda n: f"A{n:06d}")
    serial = factory.Sequence(lambda n: f"SN{n:08d}")
    model = factory.SubFactory(AssetModelFactory)
    status = models.AssetStatus.IN_STOCK
    purchase_date = datetime.date(2025, 3, 1)
    purchase_cost = Decimal("1299.00")
    warranty_end = datetime.date(2028, 3, 1)


class LicenseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.License

    application = factory.SubFactory(ApplicationFactory)
    vendor = "Acme"
    contract_number = factory.Sequence(lambda n: f"C-{n:05d}")
    seats_purchased = 10
    cost_per_seat = Decimal("12.50")
    start_date = datetime.date(2026, 1, 1)
    renewal_date = datetime.date(2027, 1, 1)
