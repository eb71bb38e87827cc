"""The entitlement admin's "Access on a date" page: who had access to an application on a day, or
what access a person had on a day, answered from history (`accounts.access_history`), with CSV and
XLSX downloads of the whole answer. Needs the view permission on entitlements (IT and auditors).
"""

from django import forms
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from accounts.access_history import access_on
from accounts.models import Application, Employee
from accounts.scoping import restrict
from portal.exports import spreadsheet_response

TEMPLATE = "admin/accounts/entitlement/access_as_of.html"
PER_PAGE = 100
HEADERS = (
    "Application",
    "Level",
    "Employee number",
    "Name",
    "Work email",
    "Source",
    "Status that day",
    "Granted",
    "Entitlement id",
)


class AccessAsOfForm(forms.Form):
    day = forms.DateField(label="On the day", widget=forms.DateInput(attrs={"type": "date"}), help_text="YYYY-MM-DD")
    application = forms.ModelChoiceField(
        queryset=Application.objects.order_by("name"),
        required=False,
        empty_label="Any application",
        help_text="Who had access to this application.",
    )
    person = forms.CharField(
        label="Person",
        required=False,
        max_length=254,
        help_text="Employee number or work email: what access this person had.",
    )

    def clean_day(self):
        day = self.cleaned_data["day"]
        if day > timezone.localdate():
            raise forms.ValidationError("Choose today or a day in the past: the history does not know the future.")
        return day

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_person(self):
        text = self.cleaned_data["person"].strip()
        if not text:
            return None
        # Someone outside a scoped user's scope is answered like nobody.
        employee = restrict(Employee.objects.filter(Q(employee_number=text) | Q(work_email__iexact=text)), self.user)
        employee = employee.first()
        if employee is None:
            raise forms.ValidationError(f"No employee has the number or work email “{text}”.")
        return employee

    def clean(self):
        cleaned = super().clean()
        if not self.errors and cleaned.get("application") is None and cleaned.get("person") is None:
            raise forms.ValidationError("Choose an application, a person, or both.")
        return cleaned


def _row(version) -> tuple:
    employee = version.employee
    return (
        version.application.name,
        version.level,
        employee.employee_number,
        employee.full_name,
        employee.work_email,
        version.get_source_display(),
        version.get_status_display(),
        version.granted_at,
        version.id,
    )


class AccessAsOfAdminMixin:
    """Adds `as-of/` to the entitlement admin, linked from its changelist."""

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        view = self.admin_site.admin_view
        return [
            path("as-of/", view(self.access_as_of_view), name="%s_%s_as_of" % info),  # noqa: UP031
            *super().get_urls(),
        ]

    def access_as_of_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = AccessAsOfForm(request.GET or None, user=request.user)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Access on a date",
            "time_zone": settings.TIME_ZONE,
            "form": form,
            "page": None,
        }
        if form.is_bound and form.is_valid():
            data = form.cleaned_data
            versions = access_on(day=data["day"], application=data["application"], employee=data["person"])
            versions = restrict(versions, request.user)  # a scoped helpdesk: the holders inside its scope
            fmt = request.GET.get("format")
            if fmt:
                name = f"access-on-{data['day'].isoformat()}"
                return spreadsheet_response(
                    filename=name, headers=HEADERS, rows=(_row(v) for v in versions.iterator(2000)), fmt=fmt
                )
            page = Paginator(versions, PER_PAGE).get_page(request.GET.get("page"))
            query = request.GET.copy()
            query.pop("page", None)
            query.pop("format", None)
            context.update(page=page, query=query.urlencode(), day=data["day"], subject=_subject(data))
        request.current_app = self.admin_site.name
        return TemplateResponse(request, TEMPLATE, context, status=400 if form.is_bound and form.errors else 200)


def _subject(data) -> str:
    parts = []
    if data["person"] is not None:
        parts.append(f"{data['person'].full_name} ({data['person'].employee_number})")
    if data["application"] is not None:
        parts.append(data["application"].name)
    return " in ".join(parts)
