"""Query-string filters of the lists (django-filter): ids, statuses and the obvious natural keys.

An id filter takes a whole number (anything else answers 400) and compares the column, never loading
the other row: an id outside what you may see simply matches nothing. A choice that does not exist
answers 400 with the valid values.
"""

import django_filters as filters
from django import forms

from accounts.models import (
    AccessRequest,
    AccessRequestStatus,
    Application,
    Department,
    Employee,
    Entitlement,
    Location,
    Role,
)
from accounts.selectors import employee_search_q
from assets.models import AssetCheckout, HardwareAsset, License
from offboarding.models import ChecklistRun, Task

MAX_ID = 2**63 - 1


class IdFilter(filters.NumberFilter):
    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


def _text(field_name, **kwargs):
    return filters.CharFilter(field_name=field_name, max_length=254, **kwargs)


class EmployeeFilter(filters.FilterSet):
    department = IdFilter(field_name="department_id")
    location = IdFilter(field_name="location_id")
    role = IdFilter(field_name="role_id")
    manager = IdFilter(field_name="manager_id")
    employee_number = _text("employee_number")
    work_email = _text("work_email", lookup_expr="iexact")
    search = filters.CharFilter(method="filter_search", max_length=100, help_text="Name, number or email.")

    class Meta:
        model = Employee
        fields = ["status", "employment_type"]

    def filter_search(self, queryset, name, value):
        return queryset.filter(employee_search_q(value)) if value.strip() else queryset


class DepartmentFilter(filters.FilterSet):
    parent = IdFilter(field_name="parent_id")
    code = _text("code")

    class Meta:
        model = Department
        fields = []


class LocationFilter(filters.FilterSet):
    code = _text("code")
    country = _text("country", lookup_expr="iexact")

    class Meta:
        model = Location
        fields = ["region"]


class RoleFilter(filters.FilterSet):
    code = _text("code")

    class Meta:
        model = Role
        fields = []


class ApplicationFilter(filters.FilterSet):
    owner = IdFilter(field_name="owner_id")
    name = _text("name", lookup_expr="iexact")

    class Meta:
        model = Application
        fields = ["connector", "requestable", "sensitivity", "approval_policy"]


class EntitlementFilter(filters.FilterSet):
    employee = IdFilter(field_name="employee_id")
    application = IdFilter(field_name="application_id")

    class Meta:
        model = Entitlement
        fields = ["status", "source"]


class AccessRequestFilter(filters.FilterSet):
    employee = IdFilter(field_name="employee_id")
    application = IdFilter(field_name="application_id")
    status = filters.ChoiceFilter(choices=AccessRequestStatus.choices)

    class Meta:
        model = AccessRequest
        fields = []


class HardwareFilter(filters.FilterSet):
    assigned_to = IdFilter(field_name="assigned_to_id")
    location = IdFilter(field_name="location_id")
    model = IdFilter(field_name="model_id")
    asset_tag = _text("asset_tag")
    serial = _text("serial")

    class Meta:
        model = HardwareAsset
        fields = ["status"]


class CheckoutFilter(filters.FilterSet):
    asset = IdFilter(field_name="asset_id")
    employee = IdFilter(field_name="employee_id")
    open = filters.BooleanFilter(field_name="checked_in_at", lookup_expr="isnull", help_text="Not yet checked in.")

    class Meta:
        model = AssetCheckout
        fields = []


class LicenseFilter(filters.FilterSet):
    application = IdFilter(field_name="application_id")
    renewal_before = filters.DateFilter(field_name="renewal_date", lookup_expr="lte")
    renewal_after = filters.DateFilter(field_name="renewal_date", lookup_expr="gte")

    class Meta:
        model = License
        fields = []


class ChecklistRunFilter(filters.FilterSet):
    employee = IdFilter(field_name="employee_id")

    class Meta:
        model = ChecklistRun
        fields = ["kind", "status"]


class TaskFilter(filters.FilterSet):
    run = IdFilter(field_name="run_id")
    assignee = IdFilter(field_name="assignee_id")

    class Meta:
        model = Task
        fields = ["status", "assignee_type"]
