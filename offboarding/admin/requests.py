"""Managers' move and leave requests: registers `ChangeRequest`, read-only. IT confirms a request
(its move or leave run starts) or declines it with a reason the manager reads, through
`offboarding.flows.change_requests`.
"""

from django import forms
from django.contrib import admin

from offboarding.flows import change_requests
from offboarding.models import ChangeRequest
from portal.admin import ActionsOnlyRecordMixin, ConfirmAction, PortalModelAdmin
from portal.limits import text_limit, text_limit_message


class DecisionNoteForm(forms.Form):
    note = forms.CharField(
        label="Reason for the manager",
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        required=True,
        max_length=text_limit(ChangeRequest, "decision_note"),
        error_messages={"max_length": text_limit_message(ChangeRequest, "decision_note")},
    )


class ConfirmForm(forms.Form):
    confirm = forms.BooleanField(
        label="Start the checklist for each request (a move applies the change now; a leave schedules the cut-off)",
        required=True,
    )


def _selected_requests(modeladmin, request, queryset):
    return list(queryset.select_related("employee").order_by("pk"))


def _confirm(request, item, data):
    change_requests.change_request_confirm(request=item, acting_user=request.user)


def _decline(request, item, data):
    change_requests.change_request_decline(request=item, note=data["note"], acting_user=request.user)


@admin.register(ChangeRequest)
class ChangeRequestAdmin(ActionsOnlyRecordMixin, PortalModelAdmin):
    """A manager's request to move or off-board a report. IT confirms it (the move or leave run starts,
    through `offboarding.flows.change_requests`) or declines it with a reason the manager reads."""

    list_display = (
        "__str__",
        "kind",
        "status",
        "effective_date",
        "requested_by",
        "proposed",
        "created_at",
        "decided_by",
    )
    list_select_related = ("employee", "requested_by", "new_role", "new_department", "new_manager", "decided_by")
    list_filter = ("status", "kind", "effective_date")
    search_fields = ("employee__employee_number", "employee__last_name", "requested_by__last_name")
    ordering = ("-created_at", "-id")
    actions = ["confirm_requests", "decline_requests"]
    fields = (
        ("employee", "kind", "status"),
        ("requested_by", "effective_date"),
        ("new_role", "new_department", "new_manager"),
        "reason",
        ("decided_by", "decided_at", "run"),
        "decision_note",
        "created_at",
    )

    @admin.display(description="change")
    def proposed(self, obj):
        if obj.kind == "leave":
            return f"Last day {obj.effective_date:%d %b %Y}"
        parts = []
        if obj.new_role_id:
            parts.append(f"role → {obj.new_role}")
        if obj.new_department_id:
            parts.append(f"department → {obj.new_department}")
        if obj.new_manager_id:
            parts.append(f"manager → {obj.new_manager.full_name}")
        return ", ".join(parts) or "—"

    confirm_requests = ConfirmAction(
        form_class=ConfirmForm,
        apply=_confirm,
        description="Confirm selected requests (start their checklists)",
        submit_label="Confirm",
        done_message="Confirmed",
        select=_selected_requests,
    )
    decline_requests = ConfirmAction(
        form_class=DecisionNoteForm,
        apply=_decline,
        description="Decline selected requests (with a reason)",
        submit_label="Decline",
        done_message="Declined",
        select=_selected_requests,
    )
