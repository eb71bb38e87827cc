"""Import and export of hardware and licenses (django-import-export 4.x).

Same rules as `portal.resources.PortalResource`: natural keys in files, re-import updates,
all-or-nothing with row, column and reason for every bad row.

- An asset's model is written "Manufacturer|Model name"; its location by code.
- Who holds an asset is exported (as employee number) but never imported: check-outs
  and check-ins go through `assets.services`, which keep the check-out log in step.
  For the same reason an import may not put an asset into a held status (assigned,
  pending return), nor change the status of an asset someone holds.
- A license names its application by name; seats used are exported, never imported.
"""

from django.core.exceptions import ValidationError
from import_export.fields import Field

from accounts.models import Application, Location
from assets.models import HELD_STATUSES, AssetModel, AssetStatus, HardwareAsset, License
from assets.selectors import licenses_with_usage
from portal.audit import audit_record
from portal.models import AuditEvent
from portal.resources import NaturalKeyWidget, PortalResource

MODEL_SEPARATOR = "|"


class AssetModelWidget(NaturalKeyWidget):
    """An asset model written as "Manufacturer|Model name", e.g. "Lenovo|ThinkPad T14"."""

    def __init__(self):
        super().__init__(AssetModel, "name")

    def clean(self, value, row=None, **kwargs):
        text = str(value or "").strip()
        if not text:
            return None
        manufacturer, sep, name = (part.strip() for part in text.partition(MODEL_SEPARATOR))
        if not sep or not manufacturer or not name:
            raise ValueError(f"{text!r} is not a model; write it as Manufacturer{MODEL_SEPARATOR}Model name.")
        try:
            return AssetModel.objects.get(manufacturer=manufacturer, name=name)
        except AssetModel.DoesNotExist:
            raise ValueError(f"No asset model {name!r} by {manufacturer!r}; add the model first.")

    def render(self, value, obj=None, **kwargs):
        return f"{value.manufacturer}{MODEL_SEPARATOR}{value.name}" if value else ""


class AssetModelResource(PortalResource):
    class Meta(PortalResource.Meta):
        model = AssetModel
        import_id_fields = ("manufacturer", "name")
        fields = ("manufacturer", "name", "category", "default_cost")


class HardwareAssetResource(PortalResource):
    model = Field(attribute="model", column_name="model", widget=AssetModelWidget())
    location = Field(attribute="location", column_name="location", widget=NaturalKeyWidget(Location, "code"))
    assigned_to = Field(attribute="assigned_to__employee_number", column_name="assigned_to", readonly=True)

    class Meta(PortalResource.Meta):
        model = HardwareAsset
        import_id_fields = ("asset_tag",)
        fields = (
            "asset_tag",
            "serial",
            "model",
            "status",
            "assigned_to",
            "location",
            "purchase_date",
            "purchase_cost",
            "warranty_end",
            "notes",
        )

    def get_queryset(self):
        return super().get_queryset().select_related("model", "location", "assigned_to")

    def after_init_instance(self, instance, new, row, **kwargs):
        super().after_init_instance(instance, new, row, **kwargs)
        instance._import_original_status = None if new else instance.status

    def import_instance(self, instance, row, **kwargs):
        errors = {}
        try:
            super().import_instance(instance, row, **kwargs)
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        original = getattr(instance, "_import_original_status", None)
        if original in HELD_STATUSES and instance.status != original:
            errors.setdefault("status", []).append(
                ValidationError(
                    f"{instance.asset_tag} is held by someone ({original}), so its status changes only "
                    "through the check-in action, not by import."
                )
            )
        elif original not in HELD_STATUSES and instance.status in HELD_STATUSES:
            allowed = ", ".join(s.value for s in AssetStatus if s not in HELD_STATUSES)
            errors.setdefault("status", []).append(
                ValidationError(
                    f"An import cannot set status {instance.status!r}: check-outs go through the check-out "
                    f"action. Use one of: {allowed}."
                )
            )
        if errors:
            raise ValidationError(errors)

    def after_save_instance(self, instance, row, **kwargs):
        super().after_save_instance(instance, row, **kwargs)
        original = getattr(instance, "_import_original_status", None)
        if not kwargs.get("dry_run") and original is not None and original != instance.status:
            audit_record(
                action=AuditEvent.Action.ASSET_STATUS,
                target=instance,
                acting_user=kwargs.get("user"),
                detail={"from": original, "to": instance.status, "via": "import"},
            )


class LicenseResource(PortalResource):
    application = Field(
        attribute="application", column_name="application", widget=NaturalKeyWidget(Application, "name")
    )
    seats_used = Field(attribute="seats_used", column_name="seats_used", readonly=True)

    class Meta(PortalResource.Meta):
        model = License
        import_id_fields = ("contract_number",)
        fields = (
            "contract_number",
            "application",
            "vendor",
            "seats_purchased",
            "seats_used",
            "cost_per_seat",
            "currency",
            "start_date",
            "renewal_date",
            "notes",
        )

    def get_queryset(self):
        return licenses_with_usage()
