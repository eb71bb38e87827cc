"""Admin for people and access: thin, declarative, writes through the services (`accounts.services`).

Registers departments, locations, applications (connector config checked on save),
role birthrights, entitlements (granted by the add form, revoked by an action, otherwise
read-only), and read-only access requests, approval steps and delegations.

Exports, unregistered, the parts of two pages higher apps own: `EmployeeAdminBase` (list,
indexed search, department filter, access inline, deletion only of people who never held
anything) for `offboarding.admin`, and `RoleAdminBase` for `assets.admin`; also the
related-list search helpers (`employee_ids_for_search`) the other admins use.

A little over 600 lines, on purpose: ten small pages that share the search helpers; none is
big enough to earn a module of its own.
"""

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import SEARCH_VAR
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from accounts.access_as_of_admin import AccessAsOfAdminMixin
from accounts.connectors import (
    ConnectorError,
    connector_for,
    connector_registry,
    mask_secrets,
    restore_secrets,
)
from accounts.hr_import_admin import EmployeeImportAdminMixin
from accounts.models import (
    LIVE_ENTITLEMENT_STATUSES,
    PERSONAL_CONTACT_FIELDS,
    PERSONAL_DATA_PERMISSION,
    AccessRequest,
    Application,
    ApprovalDelegation,
    ApprovalStep,
    Department,
    Employee,
    EmployeeImport,
    Entitlement,
    EntitlementSource,
    EntitlementStatus,
    Location,
    RoleApplication,
    ScimConnection,
)
from accounts.resources import (
    ApplicationResource,
    DepartmentResource,
    EmployeePersonalResource,
    EmployeeResource,
    LocationResource,
    RoleResource,
)
from accounts.scim.services import scim_connection_create, scim_connection_revoke
from accounts.selectors import employee_search_q
from accounts.services.employees import employee_create, employee_delete, employee_deletion_blockers
from accounts.services.entitlements import entitlement_grant, entitlement_revoke
from portal.admin import (
    ChangelistPaginator,
    PortalImportExportAdmin,
    PortalModelAdmin,
    ReadOnlyInline,
    ReadOnlyRecordMixin,
    ScopedAdminMixin,
    UnreadableQueryMixin,
    report_action_results,
)
from portal.forms import parse_id

# --- Search ------------------------------------------------------------------------------------
# Changelist search that stays fast at any company size: only lookups an index answers (exact
# numbers and emails, name prefixes as ranges), never `icontains`, which reads every row twice
# (count and page). Related lists (access, hardware, requests) first look up the matching people.

EMPLOYEE_SEARCH_HELP = (
    "Search by last or first name (or how it starts), “First Last” or “Last, First” (one of them in full), "
    "employee number or work email (exactly, any case)."
)
SEARCH_MAX_EMPLOYEES = 1000  # people a related list (access, hardware, requests) searches among


def employee_ids_for_search(modeladmin, request, term: str) -> list[int]:
    """Ids of the employees matching `term` (`accounts.selectors.employee_search_q`), at most `SEARCH_MAX_EMPLOYEES`.

    For lists of things that belong to people: filtering them by a short list of ids uses their
    employee index. When more people match, the user is told to narrow the search.
    """
    # No ORDER BY: sorting would need every match (or a scan in id order) before the limit applies.
    matches = Employee.objects.filter(employee_search_q(term)).order_by()
    ids = list(matches.values_list("pk", flat=True)[: SEARCH_MAX_EMPLOYEES + 1])
    if len(ids) > SEARCH_MAX_EMPLOYEES:
        modeladmin.message_user(
            request,
            f"More than {SEARCH_MAX_EMPLOYEES} people match “{term}”; showing what the first "
            f"{SEARCH_MAX_EMPLOYEES} of them hold. Narrow the search, e.g. “First Last”.",
            messages.WARNING,
        )
    return ids[:SEARCH_MAX_EMPLOYEES]


def application_ids_for_search(term: str) -> list[int]:
    """Ids of the applications named `term` (exactly, any case); the table is small."""
    return list(Application.objects.filter(name__iexact=term).values_list("pk", flat=True))


def deletion_refusal(employee: Employee, reasons: list[str]) -> str:
    return (
        f"{employee} cannot be deleted: these records still refer to them: {', '.join(reasons)}. "
        "Set their status to terminated instead, so the audit trail stays whole."
    )


# --- Organisation --------------------------------------------------------------------


@admin.register(Location)
class LocationAdmin(PortalImportExportAdmin):
    resource_classes = [LocationResource]
    list_display = ("name", "code", "city", "country", "region")
    list_filter = ("region", "country")
    search_fields = ("name", "code", "city")
    ordering = ("name",)


@admin.register(Department)
class DepartmentAdmin(PortalImportExportAdmin):
    """Departments; each row links to its people (the employee list filtered by the department)."""

    resource_classes = [DepartmentResource]
    list_display = ("name", "code", "parent", "head", "cost_center", "employees_link")
    list_select_related = ("parent", "head")
    search_fields = ("name", "code", "cost_center")
    autocomplete_fields = ("parent", "head")
    ordering = ("name",)

    def get_base_queryset(self, request):
        # One count per department shown (the employee index answers it), in the page's query.
        headcount = (
            Employee.objects.filter(department=OuterRef("pk"))
            .order_by()
            .values("department")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return super().get_base_queryset(request).annotate(employee_count=Coalesce(Subquery(headcount), 0))

    @admin.display(description="employees")
    def employees_link(self, obj):
        url = reverse("admin:accounts_employee_changelist", current_app=self.admin_site.name)
        count = getattr(obj, "employee_count", None)
        label = "View" if count is None else f"{count} employee{'' if count == 1 else 's'}"
        return format_html('<a href="{}?department__id__exact={}">{}</a>', url, obj.pk, label)


class RoleApplicationInline(admin.TabularInline):
    model = RoleApplication
    extra = 0
    autocomplete_fields = ("application",)
    fields = ("application", "access_level")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("role", "application")


class RoleAdminBase(PortalImportExportAdmin):
    """The role page's accounts part (birthright applications); `assets.admin` registers the page with the kit."""

    resource_classes = [RoleResource]
    list_display = ("name", "code")
    search_fields = ("name", "code", "description")
    prepopulated_fields = {"code": ("name",)}
    ordering = ("name",)
    inlines = [RoleApplicationInline]


def connector_config_help() -> str:
    examples = "; ".join(
        f"{kind}: {json.dumps(cls.example_config)}" for kind, cls in sorted(connector_registry.items())
    )
    return (
        f"Settings of the chosen connector, as a JSON object. Examples — {examples}. "
        "Secrets show as ******** once saved (leave them so to keep them); give a secret as "
        "<key>_env, the name of an environment variable, to keep it out of the database."
    )


class ApplicationAdminForm(forms.ModelForm):
    """Checks the connector config with the connector itself: each bad or missing setting by name,
    then a live connection (the system's own message). Nothing is saved while either fails.

    Secret settings are shown masked; a masked value left as it is keeps the stored secret.
    No Meta: the admin builds the form for `Application` with its fields.
    """

    skip_connection_check = forms.BooleanField(
        required=False,
        label="Save without testing the connection",
        help_text="The settings are still checked; use when the system is down for now.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "connector_config" in self.fields:
            self.fields["connector_config"].help_text = connector_config_help()
            if self.instance.pk:
                self.initial["connector_config"] = mask_secrets(self.instance.connector, self.instance.connector_config)

    def clean(self):
        cleaned = super().clean()
        kind, config = cleaned.get("connector"), cleaned.get("connector_config")
        if not kind or "connector_config" in self._errors:
            return cleaned
        config = {} if config is None else config
        stored = self.instance.connector_config if self.instance.pk and self.instance.connector == kind else {}
        config, lost = restore_secrets(kind, config, stored)
        for key in lost:
            self.add_error("connector_config", f"“{key}” shows the mask but no secret is stored for it: enter it.")
        cleaned["connector_config"] = config
        connector_class = connector_registry.get(kind)
        if connector_class is None:
            self.add_error("connector", f"Portal has no {kind} connector yet; choose another.")
            return cleaned
        if lost:
            return cleaned
        levels = cleaned.get("access_levels")
        levels = levels if isinstance(levels, list) and all(isinstance(x, str) for x in levels) else None
        try:
            connector_class.validate_config(config, access_levels=levels)
        except ValidationError as exc:
            for message in exc.messages:
                self.add_error("connector_config", message)
            return cleaned
        unchanged = self.instance.pk and kind == self.instance.connector and config == self.instance.connector_config
        if unchanged or cleaned.get("skip_connection_check"):
            return cleaned
        probe = Application(
            name=cleaned.get("name") or "(new application)",
            connector=kind,
            connector_config=config,
            access_levels=levels or [],
        )
        try:
            connector_class(probe).check_connection()
        except ConnectorError as exc:
            self.add_error("connector_config", str(exc))
        return cleaned


@admin.register(Application)
class ApplicationAdmin(PortalImportExportAdmin):
    """Applications and their connectors: the form checks the connector config and the connection
    before saving; "Test connection" checks saved ones. Secrets are never shown in clear."""

    form = ApplicationAdminForm
    resource_classes = [ApplicationResource]
    list_display = ("name", "owner", "connector", "approval_policy", "sensitivity", "requestable")
    list_select_related = ("owner",)
    list_filter = ("connector", "approval_policy", "sensitivity", "requestable")
    search_fields = ("name", "description")
    autocomplete_fields = ("owner",)
    ordering = ("name",)
    actions = ["test_connection"]

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        if obj is not None and not self.has_change_permission(request, obj):
            # Read-only viewers (auditors) see the config with its secrets masked.
            fields = ["connector_config_masked" if f == "connector_config" else f for f in fields]
            fields = [f for f in fields if f != "skip_connection_check"]
        return fields

    def get_readonly_fields(self, request, obj=None):
        readonly = tuple(super().get_readonly_fields(request, obj))
        if obj is not None and not self.has_change_permission(request, obj):
            readonly += ("connector_config_masked",)  # also in the history view, which builds its own form
        return readonly

    @admin.display(description="Connector config")
    def connector_config_masked(self, obj):
        masked = mask_secrets(obj.connector, obj.connector_config)
        return format_html("<pre>{}</pre>", json.dumps(masked, indent=2, sort_keys=True))

    @admin.action(description="Test the connection of the selected applications", permissions=["change"])
    def test_connection(self, request, queryset):
        done, manual, failed = [], [], []
        for application in queryset:
            if application.connector == "manual":
                manual.append(application.name)
                continue
            try:
                connector = connector_for(application)
                connector.validate_config(application.connector_config, access_levels=application.access_levels)
                connector.check_connection()
            except ConnectorError as exc:
                failed.append((application.name, str(exc)))
            except ValidationError as exc:
                failed.append((application.name, " ".join(exc.messages)))
            else:
                done.append(application.name)
        report_action_results(self, request, done_message="Connection works", done=done, failed=failed)
        if manual:
            self.message_user(request, f"Nothing to test for manual applications: {', '.join(manual)}.", messages.INFO)


@admin.register(RoleApplication)
class RoleApplicationAdmin(PortalModelAdmin):
    list_display = ("role", "application", "access_level")
    list_select_related = ("role", "application")
    list_filter = ("role",)
    search_fields = ("role__name", "role__code", "application__name")
    autocomplete_fields = ("role", "application")
    ordering = ("role__name", "application__name")


# --- Employees ---------------------------------------------------------------------------


class EntitlementInline(ReadOnlyInline):
    """This person's access, newest first; grant and revoke from the entitlement pages."""

    model = Entitlement
    fk_name = "employee"
    fields = ("application", "level", "status", "source", "granted_at", "expires_at", "revoked_at")
    ordering = ("-id",)
    verbose_name_plural = "Access (entitlements)"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("employee", "application")


class DepartmentListFilter(admin.SimpleListFilter):
    """By department, without listing a whole organisation on every page.

    With up to `max_listed` departments the sidebar lists them all; with more it lists only the
    chosen one (so it shows as selected and "All" clears it). A department is chosen from the
    department list's "employees" link, which uses the same parameter as Django's own filter.
    """

    title = "department"
    parameter_name = "department__id__exact"
    max_listed = 50

    def lookups(self, request, model_admin):
        departments = list(Department.objects.order_by("name").values_list("pk", "name")[: self.max_listed + 1])
        if len(departments) > self.max_listed:
            departments = []
        selected = parse_id(self.value())
        if selected is not None and not any(pk == selected for pk, _ in departments):
            departments += Department.objects.filter(pk=selected).values_list("pk", "name")
        return departments

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        department_id = parse_id(value)
        if department_id is None:
            raise IncorrectLookupParameters(f"Unknown department {value!r}.")
        return queryset.filter(department_id=department_id)


class EmployeeAdminBase(EmployeeImportAdminMixin, PortalImportExportAdmin):
    """The employee page's accounts part: list, search, filters, form, access inline, deletion rules.

    Unregistered: `offboarding.admin` registers the page, composed with the hardware parts
    `assets.admin` exports and the lifecycle (join, move, terminate, checklists).
    """

    resource_classes = [EmployeeResource]
    list_display = (
        "employee_number",
        "name",
        "work_email",
        "title",
        "department",
        "location",
        "manager",
        "role",
        "status",
        "start_date",
    )
    list_display_links = ("employee_number", "name")
    list_select_related = ("department", "location", "manager", "role")
    list_filter = ("status", "employment_type", DepartmentListFilter, "location", "role", "start_date")
    # Shows the search box and serves the autocomplete pickers; `get_search_results` does the matching.
    search_fields = ("employee_number", "first_name", "last_name", "preferred_name", "work_email")
    search_help_text = EMPLOYEE_SEARCH_HELP
    autocomplete_fields = ("department", "location", "manager", "role", "user")
    ordering = ("last_name", "first_name", "id")
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("employee_number", ("first_name", "last_name", "preferred_name"), "work_email", "title")}),
        ("Organisation", {"fields": ("department", "location", "manager", "role")}),
        ("Employment", {"fields": ("employment_type", "status", ("start_date", "end_date"))}),
        ("Login", {"fields": ("user",)}),
        (
            "Personal contact (sensitive)",
            {"classes": ("collapse",), "fields": ("personal_email", "personal_phone", "home_address")},
        ),
        ("Record", {"classes": ("collapse",), "fields": ("created_at", "updated_at")}),
    )
    actions = ["delete_selected"]
    inlines = [EntitlementInline]  # read-only: what this person holds

    @admin.display(description="name", ordering="last_name")
    def name(self, obj):
        return obj.full_name

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        employee_create(employee=obj, acting_user=request.user, via="admin")

    def get_paginator_class(self, request):
        # A name search matches thousands at scale: sort and cut their ids alone, join only the page's rows.
        searched = request.GET.get(SEARCH_VAR, "").strip()
        return ChangelistPaginator if searched else self.paginator

    def get_search_results(self, request, queryset, search_term):
        # Also the autocomplete pickers' search (manager, department head, check-out, grants ...).
        if not search_term.strip():
            return queryset, False
        personal = request.user.has_perm(PERSONAL_DATA_PERMISSION)
        return queryset.filter(employee_search_q(search_term, personal=personal)), False

    def hidden_fields(self, request) -> tuple[str, ...]:
        return () if request.user.has_perm(PERSONAL_DATA_PERMISSION) else PERSONAL_CONTACT_FIELDS

    def get_fieldsets(self, request, obj=None):
        hidden = set(self.hidden_fields(request))
        fieldsets = super().get_fieldsets(request, obj)
        if not hidden:
            return fieldsets
        kept = []
        for name, options in fieldsets:
            fields = [f for f in options["fields"] if f not in hidden]
            if fields:
                kept.append((name, {**options, "fields": fields}))
        return kept

    def get_export_resource_classes(self, request):
        # Personal contact data is exported only to those who may see it (`view_personal_data`).
        return [EmployeeResource if self.hidden_fields(request) else EmployeePersonalResource]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.has_perm("auth.view_user"):
            fields.append("user")  # the login picker needs access to users
        return fields

    # Deleting: only people who never held anything; everyone else is terminated instead.

    def delete_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        if obj is not None and self.has_delete_permission(request, obj):
            reasons = employee_deletion_blockers(employee=obj)
            if reasons:
                self.message_user(request, deletion_refusal(obj, reasons), messages.ERROR)
                return HttpResponseRedirect(reverse("admin:accounts_employee_change", args=[obj.pk]))
        return super().delete_view(request, object_id, extra_context)

    def delete_model(self, request, obj):
        employee_delete(employee=obj, acting_user=request.user)

    def delete_queryset(self, request, queryset):
        for employee in queryset:
            employee_delete(employee=employee, acting_user=request.user)

    @admin.action(permissions=["delete"], description="Delete selected employees")
    def delete_selected(self, request, queryset):
        blocked = [(e, reasons) for e in queryset if (reasons := employee_deletion_blockers(employee=e))]
        if not blocked:
            return django_delete_selected(self, request, queryset)
        for employee, reasons in blocked:
            self.message_user(request, deletion_refusal(employee, reasons), messages.ERROR)
        self.message_user(request, "Nothing was deleted. Unselect the employees above and try again.", messages.WARNING)
        return None


# --- Access --------------------------------------------------------------------------------


class _DryRun(Exception):
    pass


class EntitlementGrantForm(forms.ModelForm):
    """Grant access by hand: the service's own checks run while the form validates."""

    class Meta:
        model = Entitlement
        fields = ("employee", "application", "level", "expires_at")

    def clean(self):
        cleaned = super().clean()
        employee, application, level = (cleaned.get(k) for k in ("employee", "application", "level"))
        if self.errors or not (employee and application and level):
            return cleaned
        live = Entitlement.objects.filter(
            employee=employee, application=application, status__in=LIVE_ENTITLEMENT_STATUSES
        ).first()
        if live is not None:
            raise forms.ValidationError(
                f"{employee.full_name} already holds {application.name} (level {live.level!r}, {live.status})."
            )
        try:
            with transaction.atomic():
                entitlement_grant(
                    employee=employee,
                    application=application,
                    level=level,
                    acting_user=None,
                    expires_at=cleaned.get("expires_at"),
                )
                raise _DryRun  # roll the trial grant back; save_model grants for real
        except _DryRun:
            pass
        except ValidationError as exc:
            raise forms.ValidationError(exc.messages)
        return cleaned


@admin.register(Entitlement)
class EntitlementAdmin(AccessAsOfAdminMixin, PortalModelAdmin):
    add_form = EntitlementGrantForm
    list_display = ("id", "employee", "application", "level", "status", "source", "granted_at", "expires_at")
    list_display_links = ("id", "employee")
    list_select_related = ("employee", "application")
    list_filter = ("status", "source", "application", "granted_at", "expires_at")
    # Shows the search box; `get_search_results` does the matching.
    search_fields = ("employee__last_name", "employee__employee_number", "employee__work_email", "application__name")
    search_help_text = (
        "Search by the holder: last or first name (or how it starts), “First Last”, employee number or "
        "work email; or by an application's full name (any case)."
    )
    autocomplete_fields = ("employee", "application")
    ordering = ("-id",)
    actions = ["revoke"]

    def get_search_results(self, request, queryset, search_term):
        term = " ".join(search_term.split())
        if not term:
            return queryset, False
        employees = employee_ids_for_search(self, request, term)
        applications = application_ids_for_search(term)
        return queryset.filter(Q(employee_id__in=employees) | Q(application_id__in=applications)), False

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("employee", "application", "level", "expires_at")
        return (
            "employee",
            "application",
            "level",
            "status",
            "source",
            "granted_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
            "external_id",
        )

    def get_readonly_fields(self, request, obj=None):
        # An existing entitlement changes only through the services (revoke action, mover/leaver runs).
        return self.get_fields(request, obj) if obj is not None else ()

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: revoked rows are the record of who had what

    def save_model(self, request, obj, form, change):
        if change:
            return  # nothing is editable on an existing entitlement
        entitlement = entitlement_grant(
            employee=obj.employee,
            application=obj.application,
            level=obj.level,
            acting_user=request.user,
            source=EntitlementSource.MANUAL,
            expires_at=obj.expires_at,
        )
        obj.pk = entitlement.pk
        obj.status, obj.granted_at, obj.source = entitlement.status, entitlement.granted_at, entitlement.source

    @admin.action(permissions=["change"], description="Revoke selected entitlements")
    def revoke(self, request, queryset):
        done, failed = [], []
        for entitlement in queryset.select_related("employee", "application"):
            if entitlement.status == EntitlementStatus.REVOKED:
                failed.append((str(entitlement), "already revoked."))
                continue
            try:
                entitlement_revoke(entitlement=entitlement, acting_user=request.user, reason="Revoked in the admin.")
            except ValidationError as exc:
                failed.append((str(entitlement), " ".join(exc.messages)))
            else:
                done.append(str(entitlement))
        report_action_results(self, request, done_message="Revoked", done=done, failed=failed)


class ApprovalStepInline(ReadOnlyInline):
    model = ApprovalStep
    fields = ("order", "kind", "approver", "status", "decided_by", "decided_at", "comment")
    ordering = ("order",)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("approver", "decided_by")


@admin.register(AccessRequest)
class AccessRequestAdmin(ReadOnlyRecordMixin, PortalModelAdmin):
    """Requests are created and decided through the access-request services and self-service
    pages (`accounts.services.access_requests`, `approval_steps`); IT watches them here."""

    list_display = ("id", "employee", "application", "level", "status", "requested_by", "created_at", "decided_at")
    list_display_links = ("id", "employee")
    list_select_related = ("employee", "application", "requested_by")
    list_filter = ("status", "application", "created_at")
    # Shows the search box; `get_search_results` does the matching.
    search_fields = ("=id", "employee__last_name", "employee__employee_number", "application__name")
    search_help_text = (
        "Search by the requester: last or first name (or how it starts), “First Last”, employee number or "
        "work email; by an application's full name (any case); or by request number."
    )
    ordering = ("-created_at", "-id")
    date_hierarchy = "created_at"
    inlines = [ApprovalStepInline]

    def get_search_results(self, request, queryset, search_term):
        term = " ".join(search_term.split())
        if not term:
            return queryset, False
        q = Q(employee_id__in=employee_ids_for_search(self, request, term))
        q |= Q(application_id__in=application_ids_for_search(term))
        number = term.removeprefix("#")
        if len(number) < 10 and (pk := parse_id(number)) is not None:
            q |= Q(pk=pk)
        return queryset.filter(q), False


@admin.register(ApprovalStep)
class ApprovalStepAdmin(ReadOnlyRecordMixin, PortalModelAdmin):
    list_display = ("__str__", "request_employee", "kind", "approver", "status", "decided_by", "decided_at")
    list_select_related = ("request__employee", "request__application", "approver", "decided_by")
    list_filter = ("status", "kind")
    search_fields = ("=request__id", "approver__employee_number", "approver__last_name", "approver__work_email")
    ordering = ("-request_id", "order")

    @admin.display(description="requested for", ordering="request__employee__last_name")
    def request_employee(self, obj):
        return obj.request.employee.full_name


@admin.register(ApprovalDelegation)
class ApprovalDelegationAdmin(ReadOnlyRecordMixin, PortalModelAdmin):
    """Out-of-office delegations, made and cancelled by managers in self-service; here to watch and audit."""

    list_display = ("delegator", "delegate", "starts_on", "ends_on", "reason", "cancelled_at", "created_at")
    list_select_related = ("delegator", "delegate")
    list_filter = ("starts_on", "ends_on")
    search_fields = ("delegator__last_name", "delegator__employee_number", "delegate__last_name")
    ordering = ("-starts_on", "-id")


# --- SCIM connections (identity providers) --------------------------------------------------


class ScimConnectionForm(forms.ModelForm):
    class Meta:
        model = ScimConnection
        fields = ("name", "username_domain")


@admin.register(ScimConnection)
class ScimConnectionAdmin(PortalModelAdmin):
    """Identity providers allowed to push people through `/scim/v2/`: created with a token shown once on
    the next page (only its hash is kept), revoked with the action; never deleted (the audit trail
    names them)."""

    form = ScimConnectionForm
    list_display = ("name", "token_prefix", "status", "username_domain", "last_used_at", "created_at")
    list_select_related = ("service_user",)
    search_fields = ("name", "=token_prefix")
    readonly_fields = ("token_prefix", "service_user", "created_at", "created_by", "last_used_at", "revoked_at")
    actions = ["revoke"]

    @admin.display(description="status")
    def status(self, obj):
        return "revoked" if obj.revoked_at else "active"

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("name", "username_domain")
        return ("name", "username_domain", *self.readonly_fields)

    def get_readonly_fields(self, request, obj=None):
        return ("name", "username_domain", *self.readonly_fields) if obj is not None else ()

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if change:
            return  # nothing on an existing connection is edited here; revoke it with the action
        connection, token = scim_connection_create(
            name=obj.name, username_domain=obj.username_domain, acting_user=request.user
        )
        obj.pk = connection.pk
        request._scim_token = token

    def response_add(self, request, obj, post_url_continue=None):
        from django.template.response import TemplateResponse

        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "connection": ScimConnection.objects.get(pk=obj.pk),
            "token": request._scim_token,
            "scim_url": request.build_absolute_uri("/scim/v2/"),
            "title": f"Token for {obj.name}",
        }
        return TemplateResponse(request, "admin/accounts/scimconnection/token.html", context)

    @admin.action(permissions=["change"], description="Revoke the token of selected connections")
    def revoke(self, request, queryset):
        done = [str(scim_connection_revoke(connection=c, acting_user=request.user)) for c in queryset]
        report_action_results(self, request, done_message="Revoked", done=done, failed=[])


@admin.register(EmployeeImport)
class EmployeeImportAdmin(ReadOnlyRecordMixin, ScopedAdminMixin, UnreadableQueryMixin, admin.ModelAdmin):
    # No history table: the record is written once per step by the import service, and audited.
    show_full_result_count = False
    """HR file imports: who uploaded which file when, how it was read and what it did (never the file's rows)."""

    list_display = ("file_name", "created_by", "created_at", "status", "read_as")
    list_filter = ("status",)
    list_select_related = ("created_by",)
    fields = (
        "file_name",
        "created_by",
        "created_at",
        "status",
        "read_as",
        "date_format",
        "summary",
        "problems",
        "error",
        "queued_at",
        "started_at",
        "finished_at",
    )


# The usage feeds pages (upload, imports, unmatched sign-ins) and access reviews (campaigns, items,
# evidence) live in their own modules.
from accounts import (  # noqa: E402, F401
    admin_reviews,
    admin_scopes,
    admin_sod,  # noqa: E402, F401
    admin_usage,
)
