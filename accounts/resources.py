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

import datetime

from django.core.exceptions import MultipleObjectsReturned, ValidationError
from django.db import models
from django.db.models.fields import NOT_PROVIDED
from import_export import resources, widgets
from import_export.fields import Field

from accounts.models import (
    Application,
    Department,
    Employee,
    EmployeeStatus,
    Location,
    Role,
    default_access_levels,
)
from portal.audit import audit_record
from portal.history import set_history_user
from portal.models import AuditEvent


class NaturalKeyWidget(widgets.ForeignKeyWidget):
    """A foreign key written in files as the related row's natural key (a code, a number, a name).

    An unknown or ambiguous key raises `ValueError`, which the resource reports as
    a validation error on this column of this row (not as a crash of the import).
    """

    def clean(self, value, row=None, **kwargs):
        if isinstance(value, str):
            value = value.strip()
        if isinstance(value, float) and value.is_integer():  # spreadsheets turn "1001" into 1001.0
            value = int(value)
        try:
            return super().clean(value, row, **kwargs)
        except self.model.DoesNotExist:
            raise ValueError(f"No {self.model._meta.verbose_name} with {self._label()} {value!r}.")
        except MultipleObjectsReturned:
            raise ValueError(f"More than one {self.model._meta.verbose_name} has {self._label()} {value!r}.")

    def _label(self) -> str:
        return self.model._meta.get_field(self.field).verbose_name


class IsoDateWidget(widgets.DateWidget):
    """A date as YYYY-MM-DD (spreadsheet date cells work too), with an error that says so."""

    def clean(self, value, row=None, **kwargs):
        if isinstance(value, datetime.datetime):
            return value.date()
        try:
            return super().clean(value, row, **kwargs)
        except ValueError:
            raise ValueError(f"{value!r} is not a date; write it as YYYY-MM-DD, e.g. 2026-01-31.")


class NamesListWidget(widgets.Widget):
    """A JSON list of names, written in files as comma-separated text: "user, admin"."""

    def clean(self, value, row=None, **kwargs):
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, list):
            return value
        return [part.strip() for part in str(value).split(",") if part.strip()]

    def render(self, value, obj=None, **kwargs):
        return ", ".join(value or [])


class PortalResource(resources.ModelResource):
    """Base for Portal's resources: all-or-nothing, validated, attributed.

    - `clean_model_instances`: every row goes through the model's `full_clean()`,
      which checks lengths (SQLite would silently store an over-long value),
      choices, `clean()` rules, uniqueness and constraints.
    - `import_data` always runs in a transaction with `rollback_on_validation_errors`,
      so one invalid row rolls back all rows, also when called outside the admin
      (the admin's confirm step re-runs the import and could meet new errors).
    - Two rows of one file with the same natural key are an error on the second
      (without this check the second row would silently update the first).
    """

    class Meta:
        clean_model_instances = True
        skip_unchanged = True
        report_skipped = True
        use_transactions = True

    @classmethod
    def widget_from_django_field(cls, f, default=widgets.Widget):
        if isinstance(f, models.DateField) and not isinstance(f, models.DateTimeField):
            return IsoDateWidget
        return super().widget_from_django_field(f, default)

    def import_data(self, dataset, dry_run=False, raise_errors=False, use_transactions=None, **kwargs):
        kwargs["rollback_on_validation_errors"] = True
        return super().import_data(dataset, dry_run=dry_run, raise_errors=raise_errors, use_transactions=True, **kwargs)

    def import_field(self, field, instance, row, is_m2m=False, **kwargs):
        # A blank cell for a field with a model default (status, employment type ...) means the
        # default on a new row, but "keep what it is" on an existing one: an HR file with an empty
        # status column must not send everyone back to pre-hire.
        if (
            instance.pk is not None
            and field.default is not NOT_PROVIDED
            and field.column_name in row
            and _normalise_key(row[field.column_name]) == ""
        ):
            return
        super().import_field(field, instance, row, is_m2m=is_m2m, **kwargs)

    def before_import(self, dataset, **kwargs):
        self._rows_by_key: dict[tuple, int] = {}
        super().before_import(dataset, **kwargs)

    def before_import_row(self, row, **kwargs):
        super().before_import_row(row, **kwargs)
        id_fields = [self.fields[name] for name in self.get_import_id_fields()]
        key = tuple(_normalise_key(row.get(field.column_name)) for field in id_fields)
        if any(part == "" for part in key):
            return  # a missing key is reported by full_clean on that column
        row_number = kwargs.get("row_number")
        first = self._rows_by_key.setdefault(key, row_number)
        if first != row_number:
            columns = ", ".join(field.column_name for field in id_fields)
            raise ValidationError(
                {
                    id_fields[0].attribute: (
                        f"Duplicate: row {first} of this file has the same {columns} ({', '.join(key)}); "
                        "each must appear only once."
                    )
                }
            )

    def before_save_instance(self, instance, row, **kwargs):
        super().before_save_instance(instance, row, **kwargs)
        instance._import_created = instance.pk is None
        user = kwargs.get("user")
        if getattr(user, "pk", None):
            set_history_user(instance, user)

    def after_save_instance(self, instance, row, **kwargs):
        super().after_save_instance(instance, row, **kwargs)
        if kwargs.get("dry_run"):
            return
        audit_record(
            action=AuditEvent.Action.IMPORT,
            target=instance,
            acting_user=kwargs.get("user"),
            detail={
                "file": kwargs.get("file_name") or "",
                "row": kwargs.get("row_number"),
                "created": getattr(instance, "_import_created", False),
            },
        )


def _normalise_key(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


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

    Personal contact data (personal email and phone, home address) is neither
    exported nor imported here. A manager must appear in the database or in an
    earlier row of the same file. Status may not be set to terminated by import:
    leaving goes through the leaver process (it cuts access and collects hardware);
    a row for someone already terminated may say so unchanged.
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
