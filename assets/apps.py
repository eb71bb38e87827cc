from django.apps import AppConfig


class AssetsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "assets"

    def ready(self):
        from accounts.scoping import register_scope
        from assets.models import AssetCheckout, AssetModel, HardwareAsset, License, RoleKitItem

        # Scoped administration: hardware by where it is kept or who holds it; the catalog is everyone's.
        register_scope(HardwareAsset, employees="assigned_to", locations="location")
        register_scope(AssetCheckout, employees="employee", locations="asset__location")
        for model in (AssetModel, RoleKitItem, License):
            register_scope(model, unrestricted=True, reason="the hardware and license catalog: no person or place")
