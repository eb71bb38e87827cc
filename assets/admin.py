"""Admin for hardware and licenses: thin, declarative, writes through `assets.services`.

Registers asset models, the check-out log (read-only), kit items, licenses (seats used
counted, never stored) and the role page, composed from accounts' `RoleAdminBase` and the
hardware kit inline.

Exports, unregistered, the parts of two pages `offboarding.admin` owns: `HardwareAssetAdminBase`
(an asset's status and holder are read-only in its form; check-out, check-in, lost and retired
are actions that call the services, which keep the check-out log, history and audit log in
step; a new asset starts in stock), `asset_action` (how those actions are built), and for the
employee page `HeldHardwareInline` and `HardwareHolderPickerMixin`.
"""

from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import AutocompleteSelect
from django.db.models import F, Q

from accounts.admin import RoleAdminBase, employee_ids_for_search
from accounts.models import ASSIGNABLE_EMPLOYEE_STATUSES, Employee, Role
from assets.models import AssetCheckout, AssetModel, AssetStatus, HardwareAsset, License, RoleKitItem
from assets.resources import AssetModelResource, HardwareAssetResource, LicenseResource
from assets.selectors import licenses_with_usage
from assets.services import asset_check_in, asset_check_out, asset_mark_lost, asset_retire
from portal.admin import (
    ConfirmAction,
    PortalImportExportAdmin,
    PortalModelAdmin,
    ReadOnlyInline,
    ReadOnlyRecordMixin,
)

# --- The role page and the hardware parts of the employee page ---------------------------------


class RoleKitItemInline(admin.TabularInline):
    model = RoleKitItem
    extra = 0
    autocomplete_fields = ("asset_model",)
    fields = ("asset_model", "quantity")
    verbose_name_plural = "Standard hardware kit"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("role", "asset_model")


# Composes accounts' role page (birthright applications) and assets' hardware kit.
@admin.register(Role)
class RoleAdmin(RoleAdminBase):
    inlines = [*RoleAdminBase.inlines, RoleKitItemInline]


class HeldHardwareInline(ReadOnlyInline):
    """The hardware this person holds now; check in or out from the hardware list's actions."""

    model = HardwareAsset
    fk_name = "assigned_to"
    fields = ("asset_tag", "serial", "model", "status", "location")
    ordering = ("asset_tag",)
    verbose_name_plural = "Hardware held"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("model", "location")


class HardwareHolderPickerMixin:
    """For the employee admin: its search, as the check-out form's employee picker (an autocomplete on
    `HardwareAsset.assigned_to`), offers only people who can receive hardware."""

    def get_search_results(self, request, queryset, search_term):
        if request.GET.get("model_name") == "hardwareasset" and request.GET.get("field_name") == "assigned_to":
            queryset = queryset.filter(status__in=ASSIGNABLE_EMPLOYEE_STATUSES)
        return super().get_search_results(request, queryset, search_term)


# --- Hardware ----------------------------------------------------------------------------------


@admin.register(AssetModel)
class AssetModelAdmin(PortalImportExportAdmin):
    resource_classes = [AssetModelResource]
    list_display = ("manufacturer", "name", "category", "default_cost")
    list_filter = ("category", "manufacturer")
    search_fields = ("manufacturer", "name")
    ordering = ("manufacturer", "name")


class CheckoutLogInline(ReadOnlyInline):
    """Who held this asset, when, and in what condition it came back."""

    model = AssetCheckout
    fields = (
        "employee",
        "checked_out_at",
        "checked_out_by",
        "terms_version",
        "terms_accepted_at",
        "checked_in_at",
        "checked_in_by",
        "condition_on_return",
        "note",
    )
    ordering = ("-checked_out_at", "-id")
    verbose_name_plural = "Check-out log"

    def get_queryset(self, request):
        return (
            super().get_queryset(request).select_related("asset__model", "employee", "checked_out_by", "checked_in_by")
        )


class CheckOutForm(forms.Form):
    employee = forms.ModelChoiceField(
        queryset=Employee.objects.filter(status__in=ASSIGNABLE_EMPLOYEE_STATUSES),
        widget=AutocompleteSelect(HardwareAsset._meta.get_field("assigned_to"), admin.site),
        help_text="Type a name, email or employee number. Terminated employees are not offered.",
    )
    terms_accepted = forms.BooleanField(
        required=False,
        label="Terms accepted",
        help_text="The employee has accepted the hardware terms (otherwise they accept them in self-service).",
    )
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class CheckInForm(forms.Form):
    condition = forms.CharField(max_length=100, initial="good", help_text="e.g. good, scratched, broken screen.")
    to_status = forms.ChoiceField(
        label="Goes to",
        choices=[(AssetStatus.IN_STOCK, "Back to stock"), (AssetStatus.IN_REPAIR, "Into repair")],
        initial=AssetStatus.IN_STOCK,
    )
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class MarkLostForm(forms.Form):
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), help_text="What happened, and when.")


class RetireForm(forms.Form):
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="Why it is retired.")


def _selected_assets(modeladmin, request, queryset):
    return list(queryset.select_related("model", "assigned_to").order_by("asset_tag"))


def _asset_line(asset) -> str:
    holder = f", held by {asset.assigned_to.full_name}" if asset.assigned_to else ""
    return f"{asset} — {asset.get_status_display()}{holder}"


def asset_action(*, form_class, apply, description: str, submit_label: str, done_message: str) -> ConfirmAction:
    """An action on selected assets: a small form first, then `apply(request, asset, data)` per asset.

    The page lists each asset with its status and holder; results name assets by tag.
    """
    return ConfirmAction(
        form_class=form_class,
        apply=apply,
        description=description,
        submit_label=submit_label,
        done_message=done_message,
        title=done_message,
        select=_selected_assets,
        describe=_asset_line,
        label=lambda asset: asset.asset_tag,
    )


def _check_out(request, asset, data):
    asset_check_out(
        asset=asset,
        employee=data["employee"],
        acting_user=request.user,
        terms_accepted=data["terms_accepted"],
        note=data["note"],
    )


def _check_in(request, asset, data):
    asset_check_in(
        asset=asset,
        acting_user=request.user,
        condition=data["condition"],
        to_status=data["to_status"],
        note=data["note"],
    )


def _mark_lost(request, asset, data):
    asset_mark_lost(asset=asset, acting_user=request.user, note=data["note"])


def _retire(request, asset, data):
    asset_retire(asset=asset, acting_user=request.user, note=data["note"])


class HardwareAssetAdminBase(PortalImportExportAdmin):
    """The hardware page's assets part; `offboarding.admin` registers the page with its return request."""

    resource_classes = [HardwareAssetResource]
    list_display = (
        "asset_tag",
        "serial",
        "model",
        "status",
        "assigned_to",
        "location",
        "purchase_date",
        "warranty_end",
    )
    list_select_related = ("model", "assigned_to", "location")
    list_filter = ("status", "model__category", "location", "warranty_end")
    # Shows the search box; `get_search_results` does the matching.
    search_fields = ("asset_tag", "serial", "assigned_to__last_name", "assigned_to__employee_number")
    search_help_text = (
        "Search by asset tag or serial number (exactly, any case), or by the holder: last or first name "
        "(or how it starts), “First Last”, employee number or work email."
    )
    autocomplete_fields = ("model", "location")
    # Status and holder change only through the actions below (the services keep the check-out log in step).
    readonly_fields = ("status", "assigned_to")
    fields = (
        ("asset_tag", "serial"),
        "model",
        ("status", "assigned_to"),
        "location",
        ("purchase_date", "purchase_cost", "warranty_end"),
        "notes",
    )
    ordering = ("asset_tag",)
    inlines = [CheckoutLogInline]
    actions = ["check_out", "check_in", "mark_lost", "retire"]

    def get_search_results(self, request, queryset, search_term):
        # Indexed lookups only: tag and serial are unique; the holder through the matching people's ids.
        term = " ".join(search_term.split())
        if not term:
            return queryset, False
        codes = list(dict.fromkeys([term, term.upper()]))
        holders = employee_ids_for_search(self, request, term)
        return queryset.filter(Q(asset_tag__in=codes) | Q(serial__in=codes) | Q(assigned_to_id__in=holders)), False

    def save_model(self, request, obj, form, change):
        if not change:
            obj.status = AssetStatus.IN_STOCK
            obj.assigned_to = None
        super().save_model(request, obj, form, change)

    # Each action shows a small form first, then calls the service once per asset and
    # reports, per asset, what worked and why anything did not.

    check_out = asset_action(
        form_class=CheckOutForm,
        apply=_check_out,
        description="Check out selected assets to an employee",
        submit_label="Check out",
        done_message="Checked out",
    )
    check_in = asset_action(
        form_class=CheckInForm,
        apply=_check_in,
        description="Check in selected assets",
        submit_label="Check in",
        done_message="Checked in",
    )
    mark_lost = asset_action(
        form_class=MarkLostForm,
        apply=_mark_lost,
        description="Mark selected assets as lost",
        submit_label="Mark lost",
        done_message="Marked lost",
    )
    retire = asset_action(
        form_class=RetireForm,
        apply=_retire,
        description="Retire selected assets",
        submit_label="Retire",
        done_message="Retired",
    )


class OpenCheckoutFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "open"

    def lookups(self, request, model_admin):
        return [("yes", "Not returned yet"), ("no", "Returned")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(checked_in_at__isnull=True)
        if self.value() == "no":
            return queryset.filter(checked_in_at__isnull=False)
        return queryset


@admin.register(AssetCheckout)
class AssetCheckoutAdmin(ReadOnlyRecordMixin, PortalModelAdmin):
    """The check-out log, written only by `assets.services`."""

    list_display = (
        "asset",
        "employee",
        "checked_out_at",
        "checked_out_by",
        "terms_accepted_at",
        "checked_in_at",
        "condition_on_return",
    )
    list_select_related = ("asset__model", "employee", "checked_out_by")
    list_filter = (OpenCheckoutFilter, "checked_out_at", "checked_in_at")
    search_fields = (
        "asset__asset_tag",
        "asset__serial",
        "employee__employee_number",
        "employee__last_name",
        "employee__work_email",
    )
    ordering = ("-checked_out_at", "-id")
    date_hierarchy = "checked_out_at"


@admin.register(RoleKitItem)
class RoleKitItemAdmin(PortalModelAdmin):
    list_display = ("role", "asset_model", "quantity")
    list_select_related = ("role", "asset_model")
    list_filter = ("role", "asset_model__category")
    search_fields = ("role__name", "role__code", "asset_model__manufacturer", "asset_model__name")
    autocomplete_fields = ("role", "asset_model")
    ordering = ("role__name", "asset_model__manufacturer", "asset_model__name")


# --- Licenses -------------------------------------------------------------------------------


@admin.register(License)
class LicenseAdmin(PortalImportExportAdmin):
    resource_classes = [LicenseResource]
    list_display = (
        "contract_number",
        "application",
        "vendor",
        "seats_used",
        "seats_purchased",
        "seats_free",
        "cost_per_seat",
        "currency",
        "annual_cost",
        "renewal_date",
    )
    list_select_related = ("application",)
    list_filter = ("currency", "renewal_date", "vendor")
    search_fields = ("contract_number", "vendor", "application__name")
    autocomplete_fields = ("application",)
    ordering = ("renewal_date", "id")
    date_hierarchy = "renewal_date"

    def get_base_queryset(self, request):
        # Seats used are counted from active entitlements in the same query (never stored).
        queryset = licenses_with_usage()
        ordering = self.get_ordering(request)
        return queryset.order_by(*ordering) if ordering else queryset

    @admin.display(description="seats used", ordering="seats_used")
    def seats_used(self, obj):
        return obj.seats_used

    @admin.display(description="seats free", ordering=F("seats_purchased") - F("seats_used"))
    def seats_free(self, obj):
        return obj.seats_purchased - obj.seats_used

    @admin.display(description="annual cost", ordering=F("cost_per_seat") * F("seats_purchased"))
    def annual_cost(self, obj):
        return f"{obj.annual_cost:,.2f}"
