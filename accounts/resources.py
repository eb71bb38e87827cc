"""Import and export of people and their organisation (django-import-export 4.x).

Files name related rows by natural keys, never by database ids: a department or
location by its code, a manager by employee number, a role by its code, an
application owner by employee number. Each resource's `import_id_fields` is its
natural key, so importing the same file again updates rows instead of adding them.

Imports are all-or-nothing (`PortalResource`): one bad row (unknown reference,
duplicate key in the file or clash with another row in the database, value too
long, bad date, bad choice) and nothing is written; the preview lists each bad
row by its number (the first data row below the header is row 1), the column and
the reason. Every saved row gets a history row naming the importing user and an
"imported" audit event.
"""

from django.core.exceptions import ValidationError
from import_export.fields import Field

from accounts.models import (
    PERSONAL_CONTACT_FIELDS,
    Application,
    Department,
    Employee,
    EmployeeStatus,
    Location,
    ReviewItem,
    Role,
    default_access_levels,
)
from accounts.services.employees import employee_create
from portal.resources import FormulaSafeResource, NamesListWidget, NaturalKeyWidget, PortalResource


class LocationResource(PortalResource):
    class Meta(PortalResource.Meta):
        model = Location
        import_id_fields = ("code",)
        fields = ("code", "name", "country", "region", "city")


class DepartmentResource(PortalResource):
    parent = Field(attribute="parent", column_name="parent", widget=NaturalKeyWidget(Department, "code"))
    head = Field(attribute="head", column_name="head", widget=NaturalKeyWidget(Employee, "employee_number"))

    class Meta(PortalResource.Meta):
        model = Department
        import_id_fields = ("code",)
        fields = ("code", "name", "parent", "head", "cost_center")

    def get_queryset(self):
        return super().get_queryset().select_related("parent", "head")


class RoleResource(PortalResource):
    class Meta(PortalResource.Meta):
        model = Role
        import_id_fields = ("code",)
        fields = ("code", "name", "description")


class ApplicationResource(PortalResource):
    owner = Field(attribute="owner", column_name="owner", widget=NaturalKeyWidget(Employee, "employee_number"))
    access_levels = Field(
        attribute="access_levels", column_name="access_levels", widget=NamesListWidget(), default=default_access_levels
    )

    class Meta(PortalResource.Meta):
        model = Application
        import_id_fields = ("name",)
        # connector_config is left out on purpose: it may hold credentials.
        fields = (
            "name",
            "description",
            "owner",
            "connector",
            "access_levels",
            "approval_policy",
            "requestable",
            "sensitivity",
            "max_access_days",
            "knowledge_base_url",
        )

    def get_queryset(self):
        return super().get_queryset().select_related("owner")


class EmployeeResource(PortalResource):
    """The HR file: one row per person, keyed by employee number.

    Personal contact data (personal email and phone, home address) is not imported, and exported
    only by `EmployeePersonalResource`. A manager must appear in the database or in an
    earlier row of the same file. Status may not be set to terminated by import:
    leaving goes through the leaver process (it cuts access and collects hardware);
    a row for someone already terminated may say so unchanged. A new person is inserted by
    `employee_create` (an existing one is updated in place), inside the import's transaction, so
    a dry run and a refused file still write nothing; besides its "employee created" event the row
    gets the base's "imported" one (file and row number).
    """

    department = Field(attribute="department", column_name="department", widget=NaturalKeyWidget(Department, "code"))
    location = Field(attribute="location", column_name="location", widget=NaturalKeyWidget(Location, "code"))
    manager = Field(attribute="manager", column_name="manager", widget=NaturalKeyWidget(Employee, "employee_number"))
    role = Field(attribute="role", column_name="role", widget=NaturalKeyWidget(Role, "code"))

    class Meta(PortalResource.Meta):
        model = Employee
        import_id_fields = ("employee_number",)
        fields = (
            "employee_number",
            "first_name",
            "last_name",
            "preferred_name",
            "work_email",
            "title",
            "department",
            "location",
            "manager",
            "role",
            "employment_type",
            "status",
            "start_date",
            "end_date",
        )

    def get_queryset(self):
        return super().get_queryset().select_related("department", "location", "manager", "role")

    def after_init_instance(self, instance, new, row, **kwargs):
        super().after_init_instance(instance, new, row, **kwargs)
        instance._import_original_status = None if new else instance.status

    def before_save_instance(self, instance, row, **kwargs):
        super().before_save_instance(instance, row, **kwargs)
        instance._import_acting_user = kwargs.get("user")

    def do_instance_save(self, instance, is_create):
        if not is_create:
            super().do_instance_save(instance, is_create)
            return
        acting_user = getattr(instance, "_import_acting_user", None)
        employee_create(employee=instance, acting_user=acting_user, via="import")

    def import_instance(self, instance, row, **kwargs):
        errors = {}
        try:
            super().import_instance(instance, row, **kwargs)
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        original = getattr(instance, "_import_original_status", None)
        if instance.status == EmployeeStatus.TERMINATED and original != EmployeeStatus.TERMINATED:
            errors.setdefault("status", []).append(
                ValidationError(
                    "Employees cannot be terminated by import: start the leaver process instead, "
                    "so access is cut and hardware collected."
                )
            )
        if errors:
            raise ValidationError(errors)


class EmployeePersonalResource(EmployeeResource):
    """The HR file's export with the personal contact data (decrypted), for staff with
    `accounts.view_personal_data` only (the employee admin picks the resource by that permission)."""

    class Meta(EmployeeResource.Meta):
        fields = (*EmployeeResource.Meta.fields, *PERSONAL_CONTACT_FIELDS)
        export_order = fields


class ReviewEvidenceResource(FormulaSafeResource):
    """An access review's evidence, one row per item: who had what, who reviewed it, when, the decision,
    and when the change was confirmed. Export only; formula-safe like every Portal export."""

    reviewer = Field(column_name="reviewer")
    decided_by = Field(column_name="decided_by")
    stages = Field(column_name="stages")

    class Meta:
        model = ReviewItem
        fields = (
            "id",
            "employee_name",
            "department_name",
            "application_name",
            "level",
            "source",
            "granted_at",
            "last_used_at",
            "justification",
            "suggestion_reason",
            "reviewer",
            "reviewer_kind",
            "state",
            "decision",
            "new_level",
            "comment",
            "decided_by",
            "decided_at",
            "decided_by_rule",
            "applied_at",
            "apply_error",
            "stages",
        )
        export_order = fields

    def dehydrate_reviewer(self, item):
        return item.reviewer.full_name if item.reviewer_id else ""

    def dehydrate_decided_by(self, item):
        return item.decided_by.get_username() if item.decided_by_id else ""

    def dehydrate_stages(self, item):
        return " | ".join(
            f"stage {step['stage']} {step['decision']} by {step['by']} at {step['at'][:16]}"
            + (f": {step['comment']}" if step.get("comment") else "")
            for step in item.trail or []
        )
