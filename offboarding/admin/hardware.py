"""Hardware coming back: registers `HardwareReturn` (read-only; IT marks returns received, with the
condition, through `returns.hardware_return_receive`) and the hardware page, composed from assets'
`HardwareAssetAdminBase` plus "ask the holder to return" (`returns.hardware_return_request`).
"""

from django import forms
from django.contrib import admin
from django.db.models import Q
from django.utils import timezone

from assets.admin import HardwareAssetAdminBase, asset_action
from assets.models import AssetCheckout, HardwareAsset
from offboarding.admin.common import YesNoFilter, employee_link
from offboarding.flows import returns
from offboarding.models import HardwareReturn, ReturnCondition, ReturnStatus
from portal.admin import ActionsOnlyRecordMixin, ConfirmAction, PortalModelAdmin, overdue_badge
from portal.limits import text_limit, text_limit_message


class ReturnOverdueFilter(YesNoFilter):
    title = "overdue"
    parameter_name = "overdue"

    def condition(self):
        return Q(status=ReturnStatus.OPEN, due_date__lt=timezone.localdate())


class ReceiveReturnForm(forms.Form):
    condition = forms.ChoiceField(
        choices=ReturnCondition.choices,
        initial=ReturnCondition.GOOD,
        help_text="Good: back in stock. Damaged or missing parts: into repair.",
    )
    note = forms.CharField(
        required=False,
        max_length=text_limit(AssetCheckout, "note"),
        error_messages={"max_length": text_limit_message(AssetCheckout, "note")},
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
    )


def _receive(request, item, data):
    returns.hardware_return_receive(item=item, acting_user=request.user, condition=data["condition"], note=data["note"])


@admin.register(HardwareReturn)
class HardwareReturnAdmin(ActionsOnlyRecordMixin, PortalModelAdmin):
    list_display = (
        "asset",
        "employee_name",
        "status",
        "due_date",
        "overdue",
        "method",
        "tracking_number",
        "shipped_at",
        "received_at",
        "condition",
    )
    list_select_related = ("asset__model", "employee")
    list_filter = ("status", ReturnOverdueFilter, "method", "condition", "due_date")
    search_fields = (
        "asset__asset_tag",
        "asset__serial",
        "tracking_number",
        "employee__employee_number",
        "employee__last_name",
        "employee__work_email",
    )
    ordering = ("due_date", "id")
    date_hierarchy = "due_date"
    actions = ["receive_returns"]
    fields = (
        ("asset", "employee_name", "run"),
        ("status", "due_date", "overdue"),
        ("method", "drop_off_location", "drop_off_date"),
        ("carrier", "tracking_number", "shipped_at"),
        ("received_at", "received_by", "condition"),
        ("reminders_sent", "last_reminded_at", "created_at"),
    )

    def get_base_queryset(self, request):
        return (
            super()
            .get_base_queryset(request)
            .select_related("asset__model", "employee", "run__employee", "drop_off_location", "received_by")
        )

    @admin.display(description="employee", ordering="employee__last_name")
    def employee_name(self, obj):
        return employee_link(obj.employee)

    @admin.display(description="overdue")
    def overdue(self, obj):
        return overdue_badge(obj.status == ReturnStatus.OPEN and obj.due_date < timezone.localdate())

    receive_returns = ConfirmAction(
        form_class=ReceiveReturnForm,
        apply=_receive,
        description="Mark selected returns received (condition)",
        submit_label="Mark received",
        done_message="Received",
        select=lambda modeladmin, request, queryset: list(
            queryset.select_related("asset__model", "employee").order_by("pk")
        ),
    )


class AskReturnForm(forms.Form):
    due_date = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Leave empty for the default return period.",
    )


def _ask_to_return(request, asset, data):
    returns.hardware_return_request(asset=asset, acting_user=request.user, due_date=data["due_date"])


# Composes assets' hardware page (form, check-out log, check-out/in, lost, retire) and the return request.
@admin.register(HardwareAsset)
class HardwareAssetAdmin(HardwareAssetAdminBase):
    """The hardware admin with one more action: ask the holder to return the asset (their self-service
    return checklist, an email, the asset pending return)."""

    actions = [*HardwareAssetAdminBase.actions, "ask_to_return"]

    ask_to_return = asset_action(
        form_class=AskReturnForm,
        apply=_ask_to_return,
        description="Ask the holder to return selected assets",
        submit_label="Ask to return",
        done_message="Return asked",
    )
