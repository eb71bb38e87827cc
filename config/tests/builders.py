"""Builders the cross-app tests share: an employee given `count` applications or devices, through the services."""

from accounts.tests.factories import ApplicationFactory, EntitlementFactory
from assets.services import asset_check_out
from assets.tests.factories import HardwareAssetFactory


def give_access(employee, *, count: int, prefix: str = "App") -> list:
    """`count` active entitlements for `employee`, to applications named `<prefix> 1..count`."""
    return [
        EntitlementFactory(employee=employee, application=ApplicationFactory(name=f"{prefix} {employee.pk}-{i}"))
        for i in range(1, count + 1)
    ]


def give_hardware(employee, *, count: int, terms_accepted: bool = True, tag_prefix: str = "HW") -> list:
    """`count` assets checked out to `employee` through the service, as IT would."""
    assets = []
    for i in range(1, count + 1):
        asset = HardwareAssetFactory(asset_tag=f"{tag_prefix}-{employee.pk}-{i:03d}")
        asset_check_out(asset=asset, employee=employee, acting_user=None, terms_accepted=terms_accepted)
        assets.append(asset)
    return assets
