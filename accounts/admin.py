"""Admin for people and access: thin, declarative, writes through `accounts.services`.

- Employees, departments, locations, roles and applications: history, CSV/XLSX
  import and export (see `accounts.resources`).
- Entitlements are granted through `entitlement_grant` (the add form) and revoked
  through `entitlement_revoke` (an action); an existing entitlement is read-only.
- Access requests and approval steps are read-only here: deciding them belongs to
  the access-request services and the approvers' self-service pages.
- An employee who still holds hardware or access cannot be deleted: the admin
  says what blocks it and to terminate them instead (`employee_delete`).

`assets.admin` adds the role's hardware kit and the employee's hardware as inlines
(accounts does not import assets).
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.utils import unquote
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpResponseRedirect
from django.urls import reverse

from accounts.models import (
    LIVE_ENTITLEMENT_STATUSES,
    AccessRequest,
    Application,
    ApprovalStep,
    Department,
    Employee,
    EmployeeStatus,
    Entitlement,
    EntitlementSource,
    EntitlementStatus,
    Location,
    Role,
    RoleApplication,
)
from accounts.resources import (
    ApplicationResource,
    DepartmentResource,
    EmployeeResource,
    LocationResource,
    RoleResource,
)
from accounts.services import (
    employee_delete,
    employee_deletion_blockers,
    entitlement_grant,
    entitlement_revoke,
)
from portal.admin import PortalImportExportAdmin, PortalModelAdmin, ReadOnlyInline, report_action_results


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
    resource_classes = [DepartmentResource]
    list_display = ("name", "code", "parent", "head", "cost_center")
    list_select_related = ("parent", "head")
    search_fields = ("name", "code", "cost_center")
    autocomplete_fields = ("parent", "head")
    ordering = ("name",)


class RoleApplicationInline(admin.TabularInline):
    model = RoleApplication
    extra = 0
    autocomplete_fields = ("application",)
    fields = ("application", "access_level")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("role", "application")


@admin.register(Role)
class RoleAdmin(PortalImportExportAdmin):
    resource_classes = [RoleResource]
    list_display = ("name", "code")
    search_fields = ("name", "code", "description")
    prepopulated_fields = {"code": ("name",)}
    ordering = ("name",)
    inlines = [RoleApplicationInline]  # assets.admin adds the hardware kit inline


@admin.register(Application)
class ApplicationAdmin(PortalImportExportAdmin):
    resource_classes = [ApplicationResource]
    list_display = ("name", "owner", "connector", "approval_policy", "sensitivity", "requestable")
    list_select_related = ("owner",)
    list_filter = ("connector", "approval_policy", "sensitivity", "requestable")
    search_fields = ("name", "description")
    autocomplete_fields = ("owner",)
    ordering = ("name",)


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


@admin.register(Employee)
class EmployeeAdmin(PortalImportExportAdmin):
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
    list_filter = ("status", "employment_type", "department", "location", "role", "start_date")
    search_fields = ("employee_number", "first_name", "last_name", "preferred_name", "work_email")
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
    # Read-only views of what this person holds. assets.admin appends the hardware inline by
    # subclassing this admin and re-registering Employee.
    # CHECKLISTS GO HERE: offboarding.admin will append a read-only ChecklistRunInline (join / move /
    # leave runs with their status) the same way, subclassing the admin registered last:
    #     base = type(admin.site.get_model_admin(Employee))  # assets.admin.EmployeeAdmin
    #     class EmployeeAdmin(base): inlines = [*base.inlines, ChecklistRunInline]
    inlines = [EntitlementInline]

    @admin.display(description="name", ordering="last_name")
    def name(self, obj):
        return obj.full_name

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
class EntitlementAdmin(PortalModelAdmin):
    add_form = EntitlementGrantForm
    list_display = ("id", "employee", "application", "level", "status", "source", "granted_at", "expires_at")
    list_display_links = ("id", "employee")
    list_select_related = ("employee", "application")
    list_filter = ("status", "source", "application", "granted_at", "expires_at")
    search_fields = (
        "employee__employee_number",
        "employee__first_name",
        "employee__last_name",
        "employee__work_email",
        "application__name",
        "external_id",
    )
    autocomplete_fields = ("employee", "application")
    ordering = ("-id",)
    actions = ["revoke"]

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


class ReadOnlyRecordMixin:
    """For records that only services write (requests, approvals): view and export, never edit here."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AccessRequest)
class AccessRequestAdmin(ReadOnlyRecordMixin, PortalModelAdmin):
    """Requests are created and decided through the access-request services and self-service
    pages; approve/reject admin actions will call those services when they exist."""

    list_display = ("id", "employee", "application", "level", "status", "requested_by", "created_at", "decided_at")
    list_display_links = ("id", "employee")
    list_select_related = ("employee", "application", "requested_by")
    list_filter = ("status", "application", "created_at")
    search_fields = (
        "=id",
        "employee__employee_number",
        "employee__first_name",
        "employee__last_name",
        "application__name",
    )
    ordering = ("-created_at", "-id")
    date_hierarchy = "created_at"
    inlines = [ApprovalStepInline]


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


# Employees that can still be given things (used by pickers in other admins).
ASSIGNABLE_EMPLOYEE_STATUSES = (EmployeeStatus.PRE_HIRE, EmployeeStatus.ACTIVE, EmployeeStatus.LEAVE_OF_ABSENCE)
