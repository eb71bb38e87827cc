"""Admin for hardware and licenses: thin, declarative, writes through `assets.services`.

An asset's status and holder are read-only in its form: check-out, check-in,
lost and retired are admin actions that call the services, which keep the
check-out log, history and audit log in step. A new asset starts in stock.

This module also adds the hardware kit to the role admin and the hardware an
employee holds to the employee admin (accounts does not import assets).
"""

from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import ValidationError
from django.db.models import F, Q
from django.template.response import TemplateResponse
from django.urls import reverse

from accounts import admin as accounts_admin
from accounts.models import Employee, Role
from assets.models import AssetCheckout, AssetModel, AssetStatus, HardwareAsset, License, RoleKitItem
from assets.resources import AssetModelResource, HardwareAssetResource, LicenseResource
from assets.selectors import licenses_with_usage
from assets.services import asset_check_in, asset_check_out, asset_mark_lost, asset_retire
from portal.admin import PortalImportExportAdmin, PortalModelAdmin, ReadOnlyInline, report_action_results

ACTION_FORM_TEMPLATE = "admin/portal/action_form.html"

# --- Additions to the accounts admin --------------------------------------------------------


class RoleKitItemInline(admin.TabularInline):
    model = RoleKitItem
    extra = 0
    autocomplete_fields = ("asset_model",)
    fields = ("asset_model", "quantity")
    verbose_name_plural = "Standard hardware kit"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("role", "asset_model")


class RoleAdmin(accounts_admin.RoleAdmin):
    inlines = [*accounts_admin.RoleAdmin.inlines, RoleKitItemInline]


class HeldHardwareInline(ReadOnlyInline):
    """The hardware this person holds now; check in or out from the hardware list's actions."""

    model = HardwareAsset
    fk_name = "assigned_to"
    fields = ("asset_tag", "serial", "model", "status", "location")
    ordering = ("asset_tag",)
    verbose_name_plural = "Hardware held"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("model", "location")


class EmployeeAdmin(accounts_admin.EmployeeAdmin):
    inlines = [*accounts_admin.EmployeeAdmin.inlines, HeldHardwareInline]

    def get_search_results(self, request, queryset, search_term):
        # The check-out form's employee picker (an autocomplete on HardwareAsset.assigned_to)
        # offers only people who can receive hardware.
        if request.GET.get("model_name") == "hardwareasset" and request.GET.get("field_name") == "assigned_to":
            queryset = queryset.filter(status__in=accounts_admin.ASSIGNABLE_EMPLOYEE_STATUSES)
        return super().get_search_results(request, queryset, search_term)


admin.site.unregister(Role)
admin.site.register(Role, RoleAdmin)
admin.site.unregister(Employee)
admin.site.register(Employee, EmployeeAdmin)


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
        queryset=Employee.objects.filter(status__in=accounts_admin.ASSIGNABLE_EMPLOYEE_STATUSES),
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


@admin.register(HardwareAsset)
class HardwareAssetAdmin(PortalImportExportAdmin):
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
        holders = accounts_admin.employee_ids_for_search(self, request, term)
        return queryset.filter(Q(asset_tag__in=codes) | Q(serial__in=codes) | Q(assigned_to_id__in=holders)), False

    def save_model(self, request, obj, form, change):
        if not change:
            obj.status = AssetStatus.IN_STOCK
            obj.assigned_to = None
        super().save_model(request, obj, form, change)

    # Each action shows a small form first, then calls the service once per asset and
    # reports, per asset, what worked and why anything did not.

    def _action_with_form(self, request, queryset, *, action, form_class, title, submit_label, apply):
        assets = list(queryset.select_related("model", "assigned_to").order_by("asset_tag"))
        form = form_class(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            done, failed = [], []
            for asset in assets:
                try:
                    apply(asset, form.cleaned_data)
                except ValidationError as exc:
                    failed.append((asset.asset_tag, " ".join(exc.messages)))
                else:
                    done.append(asset.asset_tag)
            report_action_results(self, request, done_message=title, done=done, failed=failed)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "form": form,
            "media": self.media + form.media,
            "objects": [
                f"{a} — {a.get_status_display()}{f', held by {a.assigned_to.full_name}' if a.assigned_to else ''}"
                for a in assets
            ],
            "object_ids": [a.pk for a in assets],
            "action": action,
            "submit_label": submit_label,
            "back_url": reverse("admin:assets_hardwareasset_changelist"),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, ACTION_FORM_TEMPLATE, context)

    @admin.action(permissions=["change"], description="Check out selected assets to an employee")
    def check_out(self, request, queryset):
        def apply(asset, data):
            asset_check_out(
                asset=asset,
                employee=data["employee"],
                acting_user=request.user,
                terms_accepted=data["terms_accepted"],
                note=data["note"],
            )

        return self._action_with_form(
            request,
            queryset,
            action="check_out",
            form_class=CheckOutForm,
            title="Checked out",
            submit_label="Check out",
            apply=apply,
        )

    @admin.action(permissions=["change"], description="Check in selected assets")
    def check_in(self, request, queryset):
        def apply(asset, data):
            asset_check_in(
                asset=asset,
                acting_user=request.user,
                condition=data["condition"],
                to_status=data["to_status"],
                note=data["note"],
            )

        return self._action_with_form(
            request,
            queryset,
            action="check_in",
            form_class=CheckInForm,
            title="Checked in",
            submit_label="Check in",
            apply=apply,
        )

    @admin.action(permissions=["change"], description="Mark selected assets as lost")
    def mark_lost(self, request, queryset):
        def apply(asset, data):
            asset_mark_lost(asset=asset, acting_user=request.user, note=data["note"])

        return self._action_with_form(
            request,
            queryset,
            action="mark_lost",
            form_class=MarkLostForm,
            title="Marked lost",
            submit_label="Mark lost",
            apply=apply,
        )

    @admin.action(permissions=["change"], description="Retire selected assets")
    def retire(self, request, queryset):
        def apply(asset, data):
            asset_retire(asset=asset, acting_user=request.user, note=data["note"])

        return self._action_with_form(
            request,
            queryset,
            action="retire",
            form_class=RetireForm,
            title="Retired",
            submit_label="Retire",
            apply=apply,
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
class AssetCheckoutAdmin(accounts_admin.ReadOnlyRecordMixin, PortalModelAdmin):
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

    def get_queryset(self, request):
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
