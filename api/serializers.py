"""What the API shows of each row, and the bodies its writes take.

Never shown: personal contact data (personal email, phone, home address), connector configuration
(it may hold credentials), tokens' hashes. Related rows are given as ids plus a short label, so one
query serves a page (the views select the related rows).
"""

from rest_framework import serializers

from accounts.models import (
    AccessRequest,
    Application,
    ApprovalStep,
    Department,
    Employee,
    Entitlement,
    Location,
    Role,
    UsageImport,
)
from assets.models import AssetCheckout, AssetStatus, HardwareAsset, License
from offboarding.models import ChecklistRun, Task

MAX_ID = 2**63 - 1


def IdField(**kwargs):  # noqa: N802 - reads like a field class
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, **kwargs)


class EmployeeSerializer(serializers.ModelSerializer):
    full_name = serializers.CharField(read_only=True)
    department_name = serializers.CharField(source="department.name", read_only=True, allow_null=True, default=None)
    location_name = serializers.CharField(source="location.name", read_only=True, allow_null=True, default=None)
    role_name = serializers.CharField(source="role.name", read_only=True, allow_null=True, default=None)
    manager_name = serializers.CharField(source="manager.full_name", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Employee
        fields = [
            "id",
            "employee_number",
            "first_name",
            "last_name",
            "preferred_name",
            "full_name",
            "work_email",
            "title",
            "department",
            "department_name",
            "location",
            "location_name",
            "manager",
            "manager_name",
            "role",
            "role_name",
            "employment_type",
            "status",
            "start_date",
            "end_date",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class DepartmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Department
        fields = ["id", "name", "code", "parent", "head", "cost_center"]
        read_only_fields = fields


class LocationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Location
        fields = ["id", "name", "code", "country", "region", "city"]
        read_only_fields = fields


class RoleSerializer(serializers.ModelSerializer):
    class Meta:
        model = Role
        fields = ["id", "name", "code", "description"]
        read_only_fields = fields


class ApplicationSerializer(serializers.ModelSerializer):
    access_levels = serializers.ListField(child=serializers.CharField(), read_only=True)
    # A URL or "" (none): a plain string in the schema, since "" is no `format: uri` (schemathesis found it).
    knowledge_base_url = serializers.CharField(read_only=True, help_text="A link to the how-to, or empty.")

    class Meta:
        model = Application
        fields = [
            "id",
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
        ]
        read_only_fields = fields


class EntitlementSerializer(serializers.ModelSerializer):
    employee_name = serializers.CharField(source="employee.full_name", read_only=True)
    application_name = serializers.CharField(source="application.name", read_only=True)

    class Meta:
        model = Entitlement
        fields = [
            "id",
            "employee",
            "employee_name",
            "application",
            "application_name",
            "level",
            "source",
            "status",
            "granted_at",
            "revoked_at",
            "expires_at",
            "last_used_at",
            "external_id",
        ]
        read_only_fields = fields


class ApprovalStepSerializer(serializers.ModelSerializer):
    approver_name = serializers.CharField(source="approver.full_name", read_only=True)

    class Meta:
        model = ApprovalStep
        fields = ["id", "order", "kind", "approver", "approver_name", "status", "decided_at", "comment"]
        read_only_fields = fields


class AccessRequestSerializer(serializers.ModelSerializer):
    employee_name = serializers.CharField(source="employee.full_name", read_only=True)
    application_name = serializers.CharField(source="application.name", read_only=True)
    steps = ApprovalStepSerializer(many=True, read_only=True)

    class Meta:
        model = AccessRequest
        fields = [
            "id",
            "employee",
            "employee_name",
            "application",
            "application_name",
            "level",
            "justification",
            "end_date",
            "status",
            "created_at",
            "decided_at",
            "entitlement",
            "steps",
        ]
        read_only_fields = fields


class AccessRequestCreateSerializer(serializers.Serializer):
    """A request for oneself: the approval policy of the application decides who approves."""

    application = IdField(help_text="The application's id (GET /api/v1/applications/?requestable=true).")
    level = serializers.CharField(max_length=50, help_text="One of the application's access_levels.")
    justification = serializers.CharField(max_length=2000, help_text="Why you need it.")
    end_date = serializers.DateField(required=False, allow_null=True, help_text="Last day of access; empty for no end.")


class DecisionSerializer(serializers.Serializer):
    comment = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class HardwareSerializer(serializers.ModelSerializer):
    model_name = serializers.CharField(source="model.__str__", read_only=True)

    class Meta:
        model = HardwareAsset
        fields = [
            "id",
            "asset_tag",
            "serial",
            "model",
            "model_name",
            "status",
            "assigned_to",
            "location",
            "purchase_date",
            "warranty_end",
        ]
        read_only_fields = fields


class CheckoutSerializer(serializers.ModelSerializer):
    asset_tag = serializers.CharField(source="asset.asset_tag", read_only=True)
    employee_name = serializers.CharField(source="employee.full_name", read_only=True)

    class Meta:
        model = AssetCheckout
        fields = [
            "id",
            "asset",
            "asset_tag",
            "employee",
            "employee_name",
            "checked_out_at",
            "terms_version",
            "terms_accepted_at",
            "checked_in_at",
            "condition_on_return",
        ]
        read_only_fields = fields


class CheckoutCreateSerializer(serializers.Serializer):
    asset = IdField(help_text="An in-stock asset's id.")
    employee = IdField(help_text="Who receives it.")
    terms_accepted = serializers.BooleanField(required=False, default=False)
    note = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")


class CheckinSerializer(serializers.Serializer):
    condition = serializers.CharField(max_length=100, required=False, default="good")
    to_status = serializers.ChoiceField(
        choices=[AssetStatus.IN_STOCK, AssetStatus.IN_REPAIR], required=False, default=AssetStatus.IN_STOCK
    )
    note = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")


class LicenseSerializer(serializers.ModelSerializer):
    seats_used = serializers.IntegerField(read_only=True)
    cost_per_seat = serializers.DecimalField(max_digits=10, decimal_places=2, coerce_to_string=True, read_only=True)

    class Meta:
        model = License
        fields = [
            "id",
            "application",
            "vendor",
            "contract_number",
            "seats_purchased",
            "seats_used",
            "cost_per_seat",
            "currency",
            "start_date",
            "renewal_date",
        ]
        read_only_fields = fields


class ChecklistRunSerializer(serializers.ModelSerializer):
    employee_name = serializers.CharField(source="employee.full_name", read_only=True)
    total_tasks = serializers.IntegerField(read_only=True)
    finished_tasks = serializers.IntegerField(read_only=True)
    failed_tasks = serializers.IntegerField(read_only=True)
    overdue_tasks = serializers.IntegerField(read_only=True)

    class Meta:
        model = ChecklistRun
        fields = [
            "id",
            "employee",
            "employee_name",
            "kind",
            "status",
            "event_date",
            "effective_at",
            "created_at",
            "completed_at",
            "total_tasks",
            "finished_tasks",
            "failed_tasks",
            "overdue_tasks",
        ]
        read_only_fields = fields


class TaskSerializer(serializers.ModelSerializer):
    class Meta:
        model = Task
        fields = [
            "id",
            "run",
            "key",
            "title",
            "assignee_type",
            "assignee",
            "action",
            "status",
            "due_at",
            "attempts",
            "max_attempts",
            "last_error",
            "completed_at",
            "note",
            "created_at",
        ]
        read_only_fields = fields


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, help_text="Why; kept in the task's history.")


class NoteSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    is_staff = serializers.BooleanField()
    groups = serializers.ListField(child=serializers.CharField())
    employee = serializers.IntegerField(allow_null=True, help_text="Your employee record's id, if you have one.")
    token = serializers.CharField(allow_null=True, help_text="The prefix of the token used, or null for a session.")


# --- Usage (last use per entitlement) ------------------------------------------------------------

USAGE_BATCH_MAX = 1000


class UsageEventSerializer(serializers.Serializer):
    application = serializers.CharField(max_length=200, help_text="The application's name or one of its aliases.")
    email = serializers.CharField(max_length=254, help_text="The person's work email.")
    last_used_at = serializers.DateTimeField(help_text="When they last used it (ISO 8601; without a zone: UTC).")


class UsageBatchSerializer(serializers.Serializer):
    events = serializers.ListField(
        child=UsageEventSerializer(),
        min_length=1,
        max_length=USAGE_BATCH_MAX,
        help_text=f"1 to {USAGE_BATCH_MAX} last uses; a bad one refuses the whole batch, nothing written.",
    )


class UsageImportSerializer(serializers.ModelSerializer):
    class Meta:
        model = UsageImport
        fields = [
            "id",
            "source",
            "status",
            "events_read",
            "events_used",
            "pairs",
            "entitlements_updated",
            "unmatched",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields
