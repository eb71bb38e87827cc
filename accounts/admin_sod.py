"""Admin pages of separation of duties: the rules (IT admin edits, auditors read), the time-bound
exceptions (granted once, ended early with an action, never edited or deleted), and the report of the
conflicts people hold today (printable, CSV and XLSX, formula-safe). Writes through
`accounts.services.sod`; imported by `accounts.admin`.
"""

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from accounts.models import Employee, SoDException, SoDRule
from accounts.scoping import restrict
from accounts.services import sod
from portal.admin import ConfirmAction, PortalModelAdmin
from portal.exports import FORMATS, spreadsheet_response


class SoDRuleForm(forms.ModelForm):
    class Meta:
        model = SoDRule
        fields = (
            "name",
            "reason",
            "first_application",
            "first_level",
            "first_role",
            "second_application",
            "second_level",
            "second_role",
            "enforcement",
            "control_owner",
            "active",
        )


@admin.register(SoDRule)
class SoDRuleAdmin(PortalModelAdmin):
    """Rules: two entitlements one person must not hold together. Saved through `sod_rule_save`."""

    form = SoDRuleForm
    list_display = ("name", "first_side", "second_side", "enforcement", "control_owner", "active")
    list_select_related = ("first_application", "second_application", "first_role", "second_role", "control_owner")
    list_filter = ("enforcement", "active")
    search_fields = ("name", "reason")
    ordering = ("name",)
    autocomplete_fields = ("first_application", "second_application", "first_role", "second_role", "control_owner")
    fieldsets = (
        (None, {"fields": ("name", "reason", "enforcement", "control_owner", "active")}),
        (
            "First side: an application (at a level, or any) or a role",
            {"fields": ("first_application", "first_level", "first_role")},
        ),
        (
            "Second side: an application (at a level, or any) or a role",
            {"fields": ("second_application", "second_level", "second_role")},
        ),
    )

    @admin.display(description="first side")
    def first_side(self, obj):
        return obj.first_label

    @admin.display(description="second side")
    def second_side(self, obj):
        return obj.second_label

    def has_delete_permission(self, request, obj=None):
        return False  # steps and exceptions name the rule; switch it off with "active" instead

    def save_model(self, request, obj, form, change):
        sod.sod_rule_save(rule=obj, acting_user=request.user)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("violations/", wrap(self.violations_view), name="accounts_sodrule_violations"),
            path("violations/<str:fmt>/", wrap(self.violations_export_view), name="accounts_sodrule_violations_export"),
            *super().get_urls(),
        ]

    def _violation_rows(self, request) -> list[dict]:
        if not self.has_view_permission(request):
            raise PermissionDenied
        conflicts = sod.sod_violations()
        # A scoped helpdesk sees the conflicts of the people inside its scope only.
        held_by = Employee.objects.filter(pk__in={c.employee_id for c in conflicts}).select_related("department")
        people = {e.pk: e for e in restrict(held_by, request.user)}
        rows = []
        for conflict in conflicts:
            person = people.get(conflict.employee_id)
            if person is None:
                continue
            exception = conflict.exception
            rows.append(
                {
                    "conflict": conflict,
                    "person": person,
                    "status": (
                        f"exception until {exception.ends_on:%d %b %Y}, approved by {exception.approved_by.full_name}"
                        if exception
                        else "violation"
                    ),
                }
            )
        rows.sort(
            key=lambda r: (r["conflict"].excepted, r["person"].last_name, r["person"].pk, r["conflict"].rule.name)
        )
        return rows

    def violations_view(self, request):
        """Every conflict people hold today: violations first, then those an exception allows."""
        rows = self._violation_rows(request)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Separation of duties: conflicts held today",
            "rows": rows,
            "violations": sum(1 for r in rows if not r["conflict"].excepted),
            "excepted": sum(1 for r in rows if r["conflict"].excepted),
            "generated_at": timezone.now(),
            "formats": FORMATS,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/accounts/sodrule/violations.html", context)

    def violations_export_view(self, request, fmt: str):
        """The same report as CSV or XLSX (formula-safe); an unknown format is a 404."""
        if fmt not in FORMATS:
            raise Http404("Export as csv or xlsx.")
        rows = self._violation_rows(request)
        headers = [
            "Employee number",
            "Person",
            "Department",
            "Rule",
            "First side",
            "Second side",
            "Enforcement",
            "Control owner",
            "Reason",
            "Status",
            "Exception ends",
            "Exception approved by",
        ]
        data = []
        for row in rows:
            rule, person, exception = row["conflict"].rule, row["person"], row["conflict"].exception
            data.append(
                [
                    person.employee_number,
                    person.full_name,
                    person.department.name if person.department else "",
                    rule.name,
                    rule.first_label,
                    rule.second_label,
                    rule.get_enforcement_display(),
                    rule.control_owner.full_name,
                    rule.reason,
                    "excepted" if exception else "violation",
                    exception.ends_on if exception else None,
                    exception.approved_by.full_name if exception else "",
                ]
            )
        stamp = timezone.localdate().isoformat()
        return spreadsheet_response(filename=f"sod-violations-{stamp}", headers=headers, rows=data, fmt=fmt)


class SoDExceptionForm(forms.ModelForm):
    """Granting an exception: every refusal of `sod_exception_validate` shows on the form, nothing saved."""

    class Meta:
        model = SoDException
        fields = ("rule", "employee", "starts_on", "ends_on", "reason", "approved_by")

    def _post_clean(self):
        super()._post_clean()  # the instance now carries the form's values
        if self.errors or self.instance.pk is not None:
            return
        try:
            sod.sod_exception_validate(exception=self.instance)
        except ValidationError as exc:
            if hasattr(exc, "error_dict"):
                for name, errors in exc.error_dict.items():
                    self.add_error(name if name in self.fields else None, errors)
            else:
                self.add_error(None, exc)


def _end(request, exception, data):
    sod.sod_exception_end(exception=exception, acting_user=request.user)
    return str(exception)


class EndForm(forms.Form):
    """Nothing to fill in: the page itself is the confirmation."""


@admin.register(SoDException)
class SoDExceptionAdmin(PortalModelAdmin):
    """Time-bound exceptions: granted here (or by a control owner approving a request), ended early with
    the action; never edited or deleted, so the history shows who was allowed what, when and why."""

    form = SoDExceptionForm
    list_display = ("employee", "rule", "starts_on", "ends_on", "state", "approved_by", "access_request_link")
    list_select_related = ("employee", "rule", "approved_by")
    list_filter = ("rule", "starts_on", "ends_on")
    search_fields = ("employee__last_name", "employee__employee_number", "rule__name")
    ordering = ("-starts_on", "-id")
    autocomplete_fields = ("rule", "employee", "approved_by")
    readonly_fields = ("access_request", "created_by", "created_at", "ended_at")
    actions = ["end_now"]

    end_now = ConfirmAction(
        form_class=EndForm,
        apply=_end,
        description="End the selected exceptions now",
        submit_label="End them",
        done_message="Ended",
    )

    @admin.display(description="state")
    def state(self, obj):
        if obj.ended_at:
            return "ended early"
        today = timezone.localdate()
        if obj.ends_on < today:
            return "expired"
        return "in force" if obj.starts_on <= today else "starts later"

    @admin.display(description="access request")
    def access_request_link(self, obj):
        if not obj.access_request_id:
            return "—"
        return format_html(
            '<a href="{}">#{}</a>',
            reverse("admin:accounts_accessrequest_change", args=[obj.access_request_id]),
            obj.access_request_id,
        )

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:
            return (*SoDExceptionForm.Meta.fields, *self.readonly_fields)
        return self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if change:
            return  # a granted exception is not edited: end it and grant another
        sod.sod_exception_grant(exception=obj, acting_user=request.user)
