"""People and their access.

Employees, departments, locations, roles (job profiles with birthright access),
applications, entitlements (one person's access to one application) and access
requests with their approval steps. Nothing here imports `assets` or `offboarding`.
"""

import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase
from simple_history.models import HistoricalRecords

from portal.fields import (
    BlindIndexField,
    EncryptedCharField,
    EncryptedEmailField,
    EncryptedTextField,
    blind_index_fields,
)
from portal.limits import LONG_TEXT, SHORT_TEXT, TextLengthValidator, limited_text

# The object permissions of self-service access (django-guardian codenames, and the dotted names
# `has_perm` and `assign_perm` take). Declared once here, used by the Meta classes below.
DECIDE_STEP = "decide_approvalstep"
CANCEL_REQUEST = "cancel_accessrequest"
DECIDE_STEP_PERM = f"accounts.{DECIDE_STEP}"
CANCEL_REQUEST_PERM = f"accounts.{CANCEL_REQUEST}"


class Region(models.TextChoices):
    AMER = "amer", "Americas"
    EMEA = "emea", "Europe, Middle East & Africa"
    APAC = "apac", "Asia-Pacific"


class Location(models.Model):
    """An office or a remote hub. Country is an ISO 3166-1 alpha-2 code."""

    name = models.CharField(max_length=100, unique=True)
    code = models.CharField(max_length=20, unique=True, help_text="Short code, e.g. BER-1.")
    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2, e.g. DE.")
    region = models.CharField(max_length=4, choices=Region.choices)
    city = models.CharField(max_length=100, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(country__regex=r"^[A-Z]{2}$"),
                name="location_country_iso2",
                violation_error_message="Country must be two capital letters (ISO 3166-1 alpha-2), e.g. DE.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Department(models.Model):
    """A node of the organisation tree, with an optional head."""

    name = models.CharField(max_length=100, unique=True)
    code = models.CharField(max_length=20, unique=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    head = models.ForeignKey(
        "accounts.Employee",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="departments_headed",
    )
    cost_center = models.CharField(max_length=30, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(parent=models.F("pk")),
                name="department_not_own_parent",
                violation_error_message="A department cannot be its own parent.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        # Walk up the tree: a department may not be placed below one of its own descendants.
        node, seen = self.parent, set()
        while node is not None:
            if self.pk is not None and node.pk == self.pk:
                raise ValidationError({"parent": "This parent would make a cycle in the department tree."})
            if node.pk in seen:
                break
            seen.add(node.pk)
            node = node.parent


class Role(models.Model):
    """A job profile: its birthright applications (with level) and its standard hardware kit.

    The hardware kit lives in `assets.RoleKitItem`, since accounts does not import assets.
    """

    name = models.CharField(max_length=100, unique=True)
    code = models.SlugField(max_length=50, unique=True)
    description = limited_text(LONG_TEXT, "The description", blank=True)
    birthright_applications = models.ManyToManyField(
        "accounts.Application", through="accounts.RoleApplication", related_name="roles", blank=True
    )
    external_id = models.CharField(
        max_length=255, blank=True, help_text="The identity provider's id of the group this role stands for (SCIM)."
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class EmploymentType(models.TextChoices):
    FULL_TIME = "full_time", "Full-time"
    PART_TIME = "part_time", "Part-time"
    CONTRACTOR = "contractor", "Contractor"
    INTERN = "intern", "Intern"


class EmployeeStatus(models.TextChoices):
    PRE_HIRE = "pre_hire", "Pre-hire"
    ACTIVE = "active", "Active"
    LEAVE_OF_ABSENCE = "leave_of_absence", "Leave of absence"
    TERMINATED = "terminated", "Terminated"


# Employees who can still be given things (access, hardware): everyone not terminated.
ASSIGNABLE_EMPLOYEE_STATUSES = (EmployeeStatus.PRE_HIRE, EmployeeStatus.ACTIVE, EmployeeStatus.LEAVE_OF_ABSENCE)


# Personal contact data: encrypted at rest; seen, searched and exported only with this permission (IT admin).
PERSONAL_CONTACT_FIELDS = ("personal_email", "personal_phone", "home_address")
PERSONAL_DATA_PERMISSION = "accounts.view_personal_data"


class Employee(models.Model):
    """A person employed (or about to be) by the company; the subject of the lifecycle.

    `employee_number` comes from HR and is unique; `work_email` is unique regardless of case.
    Personal contact data is sensitive: it is shown only to IT and purged after retention.
    Records are never deleted while they hold hardware or access: terminate instead.
    """

    employee_number = models.CharField(max_length=64, unique=True)
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    preferred_name = models.CharField(max_length=100, blank=True)
    work_email = models.EmailField(max_length=254, unique=True)
    # Sensitive: encrypted at rest (portal.fields), shown and exported only with `view_personal_data`.
    personal_email = EncryptedEmailField(
        max_length=254,
        validators=[TextLengthValidator(254, "The personal email")],
        blank=True,
        purpose="accounts.employee.personal_email",
    )
    personal_phone = EncryptedCharField(
        max_length=30,
        validators=[TextLengthValidator(30, "The personal phone")],
        blank=True,
        purpose="accounts.employee.personal_phone",
    )
    home_address = EncryptedTextField(
        max_length=500,
        validators=[TextLengthValidator(500, "The home address")],
        blank=True,
        purpose="accounts.employee.home_address",
    )
    # Equality lookups on the encrypted values (keyed HMAC of the lower-cased email, the phone's digits).
    personal_email_index = BlindIndexField(source="personal_email", normaliser="email")
    personal_phone_index = BlindIndexField(source="personal_phone", normaliser="phone")
    title = models.CharField(max_length=150, blank=True)
    department = models.ForeignKey(
        Department, null=True, blank=True, on_delete=models.PROTECT, related_name="employees"
    )
    location = models.ForeignKey(Location, null=True, blank=True, on_delete=models.PROTECT, related_name="employees")
    manager = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reports")
    role = models.ForeignKey(Role, null=True, blank=True, on_delete=models.PROTECT, related_name="employees")
    employment_type = models.CharField(max_length=20, choices=EmploymentType.choices, default=EmploymentType.FULL_TIME)
    status = models.CharField(max_length=20, choices=EmployeeStatus.choices, default=EmployeeStatus.PRE_HIRE)
    start_date = models.DateField()
    end_date = models.DateField(null=True, blank=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="employee",
        help_text="The login this person uses for self-service.",
    )
    anonymised_at = models.DateTimeField(
        null=True, blank=True, help_text="When personal data was purged after the retention period."
    )
    external_id = models.CharField(
        max_length=255, blank=True, help_text="The identity provider's id for this person (SCIM externalId)."
    )
    scim_emails = models.JSONField(
        default=list, blank=True, help_text="The email addresses the identity provider sent (SCIM emails), as sent."
    )
    scim_inactive = models.BooleanField(
        default=False,
        help_text="Pushed inactive by an identity provider: a pre-hire whose join run waits until it is activated.",
    )
    scim_removed_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When an identity provider deleted this person through SCIM: terminated, kept, no longer listed.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The blind indexes are derived from the encrypted values: history keeps only those.
    history = HistoricalRecords(excluded_fields=["personal_email_index", "personal_phone_index"])

    class Meta:
        ordering = ["last_name", "first_name", "id"]
        indexes = [
            models.Index(fields=["external_id"], name="employee_external_id_idx"),
            models.Index(fields=["status", "last_name"], name="employee_status_name_idx"),
            models.Index(fields=["last_name", "first_name", "id"], name="employee_order_idx"),
            # Admin search by first name (prefix range) and "First Last".
            models.Index(fields=["first_name", "last_name", "id"], name="employee_first_name_idx"),
            models.Index(fields=["start_date"], name="employee_start_idx"),
            # SCIM: `name.familyName sw/eq` (a range or equality on the lower-case value) and the
            # case-insensitive employee-number check of a create, index-backed at any company size.
            models.Index(Lower("last_name"), name="employee_last_name_ci_idx"),
            models.Index(Lower("employee_number"), name="employee_number_ci_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                Lower("work_email"),
                name="employee_work_email_ci_unique",
                violation_error_message="Another employee already has this work email.",
            ),
            models.CheckConstraint(
                condition=Q(end_date__isnull=True) | Q(end_date__gte=models.F("start_date")),
                name="employee_end_after_start",
                violation_error_message="End date cannot be before the start date.",
            ),
            models.CheckConstraint(
                condition=~Q(manager=models.F("pk")),
                name="employee_not_own_manager",
                violation_error_message="An employee cannot be their own manager.",
            ),
        ]
        permissions = [
            ("view_personal_data", "Can see and export personal contact data (personal email, phone, home address)"),
        ]

    def __str__(self) -> str:
        return f"{self.full_name} ({self.employee_number})"

    def save(self, *args, **kwargs):
        # A save of only some fields still keeps each blind index in step with its encrypted value.
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            names = set(update_fields)
            for index in blind_index_fields(type(self)):
                if index.source in names:
                    names.add(index.name)
            kwargs["update_fields"] = names
        super().save(*args, **kwargs)

    @property
    def full_name(self) -> str:
        return f"{self.preferred_name or self.first_name} {self.last_name}"

    def clean(self):
        if self.work_email:
            self.work_email = self.work_email.strip().lower()
        if self.manager_id and self.pk and self.manager_id == self.pk:
            raise ValidationError({"manager": "An employee cannot be their own manager."})
        node, seen = self.manager, set()
        while node is not None and self.pk is not None:
            if node.pk == self.pk:
                raise ValidationError({"manager": "This manager would make a cycle in the reporting line."})
            if node.pk in seen:
                break
            seen.add(node.pk)
            node = node.manager


class ConnectorType(models.TextChoices):
    MANUAL = "manual", "Manual (a task for IT)"
    LDAP = "ldap", "LDAP directory"
    SCIM = "scim", "SCIM 2.0"
    WEBHOOK = "webhook", "Signed webhook"


class ApprovalPolicy(models.TextChoices):
    NONE = "none", "No approval"
    MANAGER = "manager", "Manager"
    OWNER = "owner", "Application owner"
    MANAGER_THEN_OWNER = "manager_then_owner", "Manager, then application owner"


class Sensitivity(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


def default_access_levels() -> list[str]:
    return ["user"]


class Application(models.Model):
    """A system people get accounts in, how to reach it (connector) and who approves access."""

    name = models.CharField(max_length=100, unique=True)
    description = limited_text(LONG_TEXT, "The description", blank=True)
    owner = models.ForeignKey(
        Employee, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_applications"
    )
    connector = models.CharField(max_length=20, choices=ConnectorType.choices, default=ConnectorType.MANUAL)
    connector_config = models.JSONField(default=dict, blank=True)
    access_levels = models.JSONField(
        default=default_access_levels, help_text='The levels one can hold, e.g. ["user", "admin"].'
    )
    approval_policy = models.CharField(max_length=20, choices=ApprovalPolicy.choices, default=ApprovalPolicy.MANAGER)
    requestable = models.BooleanField(default=True, help_text="Employees may request it in self-service.")
    sensitivity = models.CharField(max_length=10, choices=Sensitivity.choices, default=Sensitivity.LOW)
    max_access_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Longest time-bound grant, in days; empty for no limit."
    )
    knowledge_base_url = models.URLField(blank=True)
    aliases = models.JSONField(
        default=list,
        blank=True,
        help_text='Other names it has in sign-in logs and usage files, e.g. ["Slack Enterprise Grid", "slack"]; '
        "matched without regard to case, like the name.",
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        aliases = self.aliases
        if not isinstance(aliases, list) or not all(isinstance(x, str) and x.strip() for x in aliases):
            raise ValidationError({"aliases": 'Give a list of names, e.g. ["Slack Enterprise Grid"], or [] for none.'})
        self.aliases = [x.strip() for x in aliases]
        mine = {x.lower() for x in [self.name.strip(), *self.aliases] if x}
        for other in Application.objects.exclude(pk=self.pk).only("name", "aliases"):
            taken = mine & {x.strip().lower() for x in [other.name, *(other.aliases or [])] if isinstance(x, str)}
            if taken:
                raise ValidationError(
                    {
                        "aliases": f"{other.name} already goes by {', '.join(sorted(taken))}: "
                        "a sign-in could not say which."
                    }
                )
        levels = self.access_levels
        if not isinstance(levels, list) or not levels or not all(isinstance(x, str) and x for x in levels):
            raise ValidationError({"access_levels": 'Give a non-empty list of level names, e.g. ["user", "admin"].'})
        if len(set(levels)) != len(levels):
            raise ValidationError({"access_levels": "Each access level may appear only once."})
        if not isinstance(self.connector_config, dict):
            raise ValidationError({"connector_config": "Connector configuration must be a JSON object."})
        if self.approval_policy in (ApprovalPolicy.OWNER, ApprovalPolicy.MANAGER_THEN_OWNER) and not self.owner_id:
            raise ValidationError({"owner": "This approval policy needs an application owner."})


class RoleApplication(models.Model):
    """A birthright: everyone in the role gets this application at this level."""

    role = models.ForeignKey(Role, on_delete=models.CASCADE, related_name="birthrights")
    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="birthrights")
    access_level = models.CharField(max_length=50, default="user")
    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["role", "application"],
                name="role_application_unique",
                violation_error_message="This role already has this application as a birthright.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role} → {self.application} ({self.access_level})"

    def clean(self):
        if self.application_id and self.access_level not in self.application.access_levels:
            raise ValidationError(
                {
                    "access_level": f"{self.application} has no level {self.access_level!r}; "
                    f"choose one of {', '.join(self.application.access_levels)}."
                }
            )


class EntitlementSource(models.TextChoices):
    BIRTHRIGHT = "birthright", "Role birthright"
    REQUEST = "request", "Access request"
    IMPORT = "import", "Import"
    MANUAL = "manual", "Manual"


class EntitlementStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACTIVE = "active", "Active"
    REVOKING = "revoking", "Revoking"
    REVOKED = "revoked", "Revoked"


LIVE_ENTITLEMENT_STATUSES = (
    EntitlementStatus.PENDING,
    EntitlementStatus.ACTIVE,
    EntitlementStatus.REVOKING,
)


class Entitlement(models.Model):
    """One employee's access to one application at one level.

    At most one live (pending, active or revoking) entitlement per employee and
    application; revoked rows are kept as history of who had what, when.
    """

    employee = models.ForeignKey(Employee, on_delete=models.PROTECT, related_name="entitlements")
    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="entitlements")
    level = models.CharField(max_length=50, default="user")
    source = models.CharField(max_length=20, choices=EntitlementSource.choices, default=EntitlementSource.MANUAL)
    status = models.CharField(max_length=20, choices=EntitlementStatus.choices, default=EntitlementStatus.PENDING)
    granted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    external_id = models.CharField(max_length=255, blank=True, help_text="Account id in the target system.")
    expiry_notified_at = models.DateTimeField(
        null=True, blank=True, help_text="When the holder was told that this time-bound access ends soon."
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["application", "status"], name="entitlement_app_status_idx"),
            models.Index(fields=["employee", "status"], name="entitlement_emp_status_idx"),
            models.Index(fields=["status", "-id"], name="entitlement_status_id_idx"),
            models.Index(fields=["expires_at"], name="entitlement_expires_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["employee", "application"],
                condition=Q(status__in=["pending", "active", "revoking"]),
                name="entitlement_one_live_per_app",
                violation_error_message="This employee already holds (or is being given) access to this application.",
            ),
            models.CheckConstraint(
                condition=Q(revoked_at__isnull=True) | Q(status="revoked"),
                name="entitlement_revoked_at_only_when_revoked",
                violation_error_message="Only a revoked entitlement has a revocation time.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.employee.full_name} · {self.application.name} ({self.level})"

    @property
    def last_day(self) -> datetime.date | None:
        """The last day the access lasts, in local time: access to an end date expires at the next
        midnight (`expires_at_for`), so that midnight itself belongs to the day after. None: no end."""
        if self.expires_at is None:
            return None
        return timezone.localdate(self.expires_at - datetime.timedelta(microseconds=1))

    def clean(self):
        if self.application_id and self.level not in self.application.access_levels:
            raise ValidationError(
                {
                    "level": f"{self.application} has no level {self.level!r}; "
                    f"choose one of {', '.join(self.application.access_levels)}."
                }
            )
        if self.expires_at and self.granted_at and self.expires_at <= self.granted_at:
            raise ValidationError({"expires_at": "Expiry must be after the grant time."})


class AccessRequestStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"


class AccessRequest(models.Model):
    """An employee's request for access to an application, decided by its approval steps."""

    employee = models.ForeignKey(Employee, on_delete=models.PROTECT, related_name="access_requests")
    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="access_requests")
    level = models.CharField(max_length=50, default="user")
    justification = limited_text(SHORT_TEXT, "The justification")
    end_date = models.DateField(null=True, blank=True, help_text="Access ends on this day; empty for no end.")
    status = models.CharField(max_length=20, choices=AccessRequestStatus.choices, default=AccessRequestStatus.PENDING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    entitlement = models.ForeignKey(
        Entitlement, null=True, blank=True, on_delete=models.SET_NULL, related_name="access_requests"
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [(CANCEL_REQUEST, "Can cancel this access request")]
        indexes = [models.Index(fields=["status", "-created_at"], name="accessrequest_status_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["employee", "application"],
                condition=Q(status="pending"),
                name="accessrequest_one_pending_per_app",
                violation_error_message="There is already a pending request for this application.",
            ),
            models.CheckConstraint(
                condition=Q(justification__regex=r"\S"),
                name="accessrequest_justification_required",
                violation_error_message="A justification is required.",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.employee.full_name} → {self.application.name}"

    def clean(self):
        if self.application_id and self.level not in self.application.access_levels:
            raise ValidationError({"level": f"{self.application} has no level {self.level!r}."})


class ApprovalStepKind(models.TextChoices):
    MANAGER = "manager", "Manager"
    OWNER = "owner", "Application owner"
    CONTROL = "control", "Control owner (separation of duties)"


class ApprovalStepStatus(models.TextChoices):
    WAITING = "waiting", "Waiting for an earlier step"
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    SKIPPED = "skipped", "Skipped"


class ApprovalStep(models.Model):
    """One decision in an access request's chain: who must decide, and what they decided."""

    request = models.ForeignKey(AccessRequest, on_delete=models.CASCADE, related_name="steps")
    order = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=10, choices=ApprovalStepKind.choices)
    approver = models.ForeignKey(Employee, on_delete=models.PROTECT, related_name="approval_steps")
    status = models.CharField(max_length=10, choices=ApprovalStepStatus.choices, default=ApprovalStepStatus.WAITING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    comment = limited_text(SHORT_TEXT, "The comment", blank=True)
    activated_at = models.DateTimeField(
        null=True, blank=True, help_text="When the step started waiting on its approver."
    )
    last_reminded_at = models.DateTimeField(null=True, blank=True)
    sod_rule = models.ForeignKey(
        "accounts.SoDRule",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="approval_steps",
        help_text="For a control owner's step: the separation-of-duties rule the request would break.",
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["request", "order"]
        permissions = [(DECIDE_STEP, "Can decide this approval step")]
        indexes = [
            models.Index(fields=["approver", "status"], name="approvalstep_inbox_idx"),
            models.Index(fields=["status", "activated_at"], name="approvalstep_status_since_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["request", "order"],
                name="approvalstep_order_unique",
                violation_error_message="Two steps of one request cannot share a position.",
            ),
        ]

    def __str__(self) -> str:
        return f"Step {self.order} ({self.get_kind_display()}) of request #{self.request_id}"


class ApprovalDelegation(models.Model):
    """An approver away (out of office) lets a colleague decide their approval steps for a date range.

    Both days are inclusive. While it is in force the delegate holds the object permission to decide
    each of the delegator's pending steps; cancelling it (or its end) takes that away again.
    """

    delegator = models.ForeignKey(Employee, on_delete=models.PROTECT, related_name="delegations_given")
    delegate = models.ForeignKey(Employee, on_delete=models.PROTECT, related_name="delegations_received")
    starts_on = models.DateField()
    ends_on = models.DateField()
    reason = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-starts_on", "-id"]
        indexes = [
            models.Index(fields=["delegator", "ends_on"], name="delegation_delegator_idx"),
            models.Index(fields=["delegate", "ends_on"], name="delegation_delegate_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_on__gte=models.F("starts_on")),
                name="delegation_ends_after_start",
                violation_error_message="The delegation cannot end before it starts.",
            ),
            models.CheckConstraint(
                condition=~Q(delegate=models.F("delegator")),
                name="delegation_not_to_self",
                violation_error_message="You cannot delegate approvals to yourself.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.delegator.full_name} → {self.delegate.full_name} ({self.starts_on} – {self.ends_on})"

    def is_in_force(self, day=None) -> bool:
        from django.utils import timezone

        day = day or timezone.localdate()
        return self.cancelled_at is None and self.starts_on <= day <= self.ends_on


class ScimConnection(models.Model):
    """An identity provider (Okta, Entra ID ...) allowed to push people into Portal through `/scim/v2/`.

    It holds one bearer token, shown once when the connection is created and stored only as a
    SHA-256 hash plus a short prefix (to recognise it in lists and logs). A revoked connection's token
    is refused from then on. Each connection has its own login-less service user, which is the acting
    user of every write it makes: history rows and audit events name `scim:<name>`.
    """

    name = models.CharField(max_length=100, unique=True, help_text="e.g. Okta, Entra ID.")
    token_prefix = models.CharField(max_length=16, unique=True, editable=False)
    token_hash = models.CharField(max_length=64, editable=False)
    service_user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="scim_connection", editable=False
    )
    username_domain = models.CharField(
        max_length=200,
        blank=True,
        help_text=(
            "For identity providers whose usernames are short names: a userName without @ means "
            "<userName>@<this domain>, e.g. helix.example. Empty: every userName is a full work email."
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        verbose_name = "SCIM connection"
        constraints = [
            models.CheckConstraint(
                condition=Q(username_domain="") | Q(username_domain__regex=r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$"),
                name="scimconnection_username_domain_format",
                violation_error_message="Give a domain name in lower case, without @, e.g. helix.example.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


# django-guardian object permissions with direct foreign keys (fast joins, real FK integrity).
class AccessRequestUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(AccessRequest, on_delete=models.CASCADE)


class AccessRequestGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(AccessRequest, on_delete=models.CASCADE)


class ApprovalStepUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(ApprovalStep, on_delete=models.CASCADE)


class ApprovalStepGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(ApprovalStep, on_delete=models.CASCADE)


# --- Usage feeds (accounts.services.usage) -------------------------------------------------------


class UsageSource(models.TextChoices):
    OKTA = "okta", "Okta System Log (JSON)"
    ENTRA = "entra", "Entra ID sign-in log (CSV or JSON)"
    APP_CSV = "app_csv", "One application's CSV (email, last active)"
    API = "api", "REST API"


def usage_upload_storage():
    """Where uploaded usage files wait for the worker: `PORTAL_USAGE_UPLOAD_DIR`, never a public media folder.

    With several worker hosts this must be a directory they all see (or run `manage.py usage_import` on the host).
    """
    from django.core.files.storage import FileSystemStorage

    return FileSystemStorage(location=settings.USAGE_FEEDS["UPLOAD_DIR"])


class UsageImport(models.Model):
    """One sign-in log or usage file read into `Entitlement.last_used_at` (or one batch given by the API).

    Written by `accounts.services.usage`: the file is read whole first (a bad line refuses it with nothing
    written), then last uses move forward in one transaction. The uploaded file is deleted once read.
    `bytes_read` of `file_size` is the progress bar while a worker reads it.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for a worker"
        READING = "reading", "Reading the file"
        DONE = "done", "Done"
        FAILED = "failed", "Refused: nothing written"

    source = models.CharField(max_length=20, choices=UsageSource.choices)
    application = models.ForeignKey(
        Application,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="usage_imports",
        help_text="For one application's CSV: the application every row is about.",
    )
    file = models.FileField(storage=usage_upload_storage, upload_to="usage/%Y/%m/", blank=True, max_length=300)
    file_name = models.CharField(max_length=255, blank=True, help_text="The name the file was uploaded with.")
    file_size = models.PositiveBigIntegerField(default=0)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life of the worker reading it (a silent one is replaced)."
    )
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    bytes_read = models.PositiveBigIntegerField(default=0)
    events_read = models.PositiveIntegerField(default=0, help_text="Records read from the file.")
    events_used = models.PositiveIntegerField(
        default=0, help_text="Successful sign-ins (or rows with a last-active time) among them."
    )
    pairs = models.PositiveIntegerField(default=0, help_text="Distinct (application, person) pairs among those.")
    entitlements_updated = models.PositiveIntegerField(
        default=0, help_text="Entitlements whose last use moved forward."
    )
    unmatched = models.PositiveIntegerField(default=0, help_text="Pairs that matched no application, person or access.")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="usageimport_status_idx")]
        verbose_name = "usage import"

    def __str__(self) -> str:
        return f"{self.get_source_display()}: {self.file_name or 'API batch'} ({self.get_status_display()})"

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        return min(99, int(100 * self.bytes_read / self.file_size)) if self.file_size else 0


class UnmatchedUsage(models.Model):
    """Sign-ins Portal could not pin on an entitlement, one row per (source, application name, user).

    Kept for shadow-IT discovery: applications nobody registered, people Portal does not know, and
    access Portal does not record. `count` counts sign-ins newer than `last_seen` when they were read
    (so re-importing a log, or overlapping exports, count nothing twice); the window only widens.
    """

    class Reason(models.TextChoices):
        NO_APPLICATION = "no_application", "No application by this name or alias"
        NO_PERSON = "no_person", "No employee with this work email"
        NO_ACCESS = "no_access", "The person holds no live access to it in Portal"

    source = models.CharField(max_length=20, choices=UsageSource.choices)
    app_name = models.CharField(max_length=255, help_text="The application as the log names it.")
    app_key = models.CharField(max_length=255, editable=False)
    user = models.CharField(max_length=254, help_text="The user as the log names them (a login or email).")
    user_key = models.CharField(max_length=254, editable=False)
    application = models.ForeignKey(
        Application, null=True, blank=True, on_delete=models.SET_NULL, related_name="unmatched_usage"
    )
    employee = models.ForeignKey(Employee, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.CharField(max_length=20, choices=Reason.choices)
    count = models.PositiveIntegerField(default=0)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)
    last_import = models.ForeignKey(UsageImport, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-last_seen", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "app_key", "user_key"], name="unmatchedusage_unique"),
        ]
        indexes = [models.Index(fields=["reason", "-last_seen"], name="unmatchedusage_reason_idx")]
        verbose_name = "unmatched sign-in"
        verbose_name_plural = "unmatched sign-ins"

    def __str__(self) -> str:
        return f"{self.app_name} · {self.user} ({self.get_reason_display()})"


class EmployeeImportStatus(models.TextChoices):
    PREVIEWED = "previewed", "Previewed, waiting for confirmation"
    QUEUED = "queued", "Waiting for a worker"
    RUNNING = "running", "Importing"
    DONE = "done", "Imported"
    REFUSED = "refused", "Refused, nothing written"
    FAILED = "failed", "Failed, nothing written"
    ABANDONED = "abandoned", "Abandoned, nothing written"


class EmployeeImport(models.Model):
    """One upload of an HR file, from its preview to its outcome.

    The uploaded file itself is never kept: its rows are read once, and the cells (`rows`, what
    the confirm step imports) stay here only while the import waits for confirmation or for a
    worker. They are emptied as soon as it is done, refused, failed or abandoned, and a preview
    nobody confirms within `PORTAL_IMPORT_PREVIEW_MINUTES` is abandoned. What stays is
    who, when, the file's name, how it was read and the counts.
    """

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    file_name = models.CharField(max_length=255)
    read_as = models.CharField(max_length=100, blank=True, help_text="How the file was read (format, encoding).")
    date_format = models.CharField(max_length=10, default="iso")
    status = models.CharField(
        max_length=20, choices=EmployeeImportStatus.choices, default=EmployeeImportStatus.PREVIEWED
    )
    rows = models.JSONField(default=dict, blank=True, help_text="The file's cells until the import is over.")
    summary = models.JSONField(default=dict, blank=True)
    problems = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "HR file import"
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{self.file_name} ({self.created_at:%Y-%m-%d %H:%M}, {self.get_status_display()})"

    @property
    def is_over(self) -> bool:
        return self.status in (
            EmployeeImportStatus.DONE,
            EmployeeImportStatus.REFUSED,
            EmployeeImportStatus.FAILED,
            EmployeeImportStatus.ABANDONED,
        )


# --- Access reviews (accounts.services.reviews) ---------------------------------------------------


class ReviewerRule(models.TextChoices):
    MANAGER = "manager", "The person's manager"
    OWNER = "owner", "The application owner"
    MANAGER_THEN_OWNER = "manager_then_owner", "The manager, then the application owner"


class UnansweredRule(models.TextChoices):
    KEEP = "keep", "Keep the access"
    REVOKE = "revoke", "Revoke the access"
    ESCALATE = "escalate", "Escalate to the reviewer's manager"


class ReviewRecurrence(models.TextChoices):
    NONE = "none", "Once"
    QUARTERLY = "quarterly", "Every quarter"
    HALF_YEARLY = "half_yearly", "Every six months"
    YEARLY = "yearly", "Every year"


# Months between two campaigns of a recurring schedule.
RECURRENCE_MONTHS = {ReviewRecurrence.QUARTERLY: 3, ReviewRecurrence.HALF_YEARLY: 6, ReviewRecurrence.YEARLY: 12}


class AccessReviewStatus(models.TextChoices):
    DRAFT = "draft", "Draft (not launched)"
    LAUNCHING = "launching", "Launching (items being frozen)"
    ACTIVE = "active", "In review"
    CLOSED = "closed", "Closed"


SENSITIVITY_RANK = {Sensitivity.LOW: 0, Sensitivity.MEDIUM: 1, Sensitivity.HIGH: 2}


class AccessReview(models.Model):
    """A certification campaign: who must confirm which access, by when, and what happens if they do not.

    Scope: everything, or the live entitlements matching every filter given (applications, a minimum
    sensitivity, the holder's departments). Launching it (`review_campaign_launch`) freezes one
    `ReviewItem` per entitlement in scope; later changes to the access do not rewrite what was reviewed.
    A recurring campaign plans its successor (a draft, dates moved on) when it is launched.
    """

    name = models.CharField(max_length=150)
    description = limited_text(LONG_TEXT, "The description", blank=True)
    scope_everything = models.BooleanField(
        default=False, help_text="Review every live entitlement (the filters below are then ignored)."
    )
    applications = models.ManyToManyField(
        Application, blank=True, related_name="access_reviews", help_text="Only these applications (none: any)."
    )
    min_sensitivity = models.CharField(
        max_length=10,
        choices=Sensitivity.choices,
        blank=True,
        help_text="Only applications of at least this sensitivity (empty: any).",
    )
    departments = models.ManyToManyField(
        Department, blank=True, related_name="access_reviews", help_text="Only people in these departments (none: any)."
    )
    reviewer_rule = models.CharField(max_length=20, choices=ReviewerRule.choices, default=ReviewerRule.MANAGER)
    starts_on = models.DateField()
    due_on = models.DateField()
    unanswered_rule = models.CharField(
        max_length=10,
        choices=UnansweredRule.choices,
        default=UnansweredRule.KEEP,
        help_text="What happens to an item nobody answered by the due date.",
    )
    auto_revoke_cap_percent = models.PositiveSmallIntegerField(
        default=10,
        help_text="Revoke unanswered items automatically only up to this share of the campaign (percent); "
        "beyond it IT must confirm.",
    )
    recurrence = models.CharField(max_length=20, choices=ReviewRecurrence.choices, default=ReviewRecurrence.QUARTERLY)
    status = models.CharField(max_length=10, choices=AccessReviewStatus.choices, default=AccessReviewStatus.DRAFT)
    previous = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="next_campaign", editable=False
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    launched_at = models.DateTimeField(null=True, blank=True, editable=False)
    launched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    item_count = models.PositiveIntegerField(
        default=0, editable=False, help_text="Items frozen at launch (while launching: the number planned)."
    )
    launch_fallback_reviewer = models.ForeignKey(
        "Employee",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
        help_text="Who IT chose at launch to review the items nobody else could.",
    )
    launch_heartbeat_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="While launching: when the worker last wrote a batch (none for a long time: it died; it resumes).",
    )
    launch_error = models.CharField(
        max_length=4000, blank=True, editable=False, help_text="Why the last launch stopped, in plain words."
    )
    reminded_days = models.JSONField(
        default=list, blank=True, editable=False, help_text="Reminders sent, as days before the due date."
    )
    due_processed_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When the unanswered items followed the campaign's rule."
    )
    cap_blocked_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When the due date would have revoked more than the cap: waiting for IT to confirm.",
    )
    closed_at = models.DateTimeField(null=True, blank=True, editable=False)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-starts_on", "-id"]
        verbose_name = "access review"
        indexes = [models.Index(fields=["status", "due_on"], name="accessreview_status_due_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(due_on__gt=models.F("starts_on")),
                name="accessreview_due_after_start",
                violation_error_message="The due date must come after the start date.",
            ),
            models.CheckConstraint(
                condition=Q(auto_revoke_cap_percent__lte=100),
                name="accessreview_cap_percent",
                violation_error_message="The auto-revoke cap is a percentage: 0 to 100.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        if self.name is not None and not self.name.strip():
            raise ValidationError({"name": "Give the campaign a name."})


class ReviewItemState(models.TextChoices):
    OPEN = "open", "Waiting for a decision"
    KEPT = "kept", "Kept"
    APPLYING = "applying", "Sent to the lifecycle engine"
    APPLIED = "applied", "Change confirmed"
    FAILED = "failed", "Could not be applied (IT must act)"


class ReviewDecision(models.TextChoices):
    KEEP = "keep", "Keep"
    REVOKE = "revoke", "Revoke"
    CHANGE_LEVEL = "change_level", "Change level"


class ReviewerKind(models.TextChoices):
    MANAGER = "manager", "Manager"
    OWNER = "owner", "Application owner"
    ESCALATED = "escalated", "Escalated (reviewer's manager)"
    CHOSEN = "chosen", "Chosen by IT"


class ReviewSuggestion(models.TextChoices):
    NONE = "", "No suggestion"
    KEEP = "keep", "Suggest keep"
    REVOKE = "revoke", "Suggest revoke"


class ReviewItem(models.Model):
    """One entitlement as it was when its campaign launched, who must review it and what they decided.

    The frozen columns (holder, application, level, since, last used, source, justification) are
    copied at launch and never follow the entitlement. `trail` keeps each stage's decision (manager,
    then owner); the item's own decision is the final one. A revoke or level change goes through the
    lifecycle engine (`state` applying) until it is confirmed (`applied_at`), or stays open as failed.
    """

    campaign = models.ForeignKey(AccessReview, on_delete=models.PROTECT, related_name="items")
    entitlement = models.ForeignKey(Entitlement, on_delete=models.PROTECT, related_name="review_items")
    employee = models.ForeignKey(Employee, on_delete=models.PROTECT, related_name="review_items")
    employee_name = models.CharField(max_length=210)
    department_name = models.CharField(max_length=100, blank=True)
    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="review_items")
    application_name = models.CharField(max_length=100)
    level = models.CharField(max_length=50)
    granted_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=20, choices=EntitlementSource.choices)
    justification = models.CharField(max_length=SHORT_TEXT, blank=True, help_text="The access request's, if any.")
    suggestion = models.CharField(max_length=10, choices=ReviewSuggestion.choices, blank=True)
    suggestion_reason = models.CharField(max_length=200, blank=True)
    stage = models.PositiveSmallIntegerField(default=1)
    reviewer = models.ForeignKey(
        Employee, null=True, blank=True, on_delete=models.PROTECT, related_name="reviews_to_do"
    )
    reviewer_kind = models.CharField(max_length=10, choices=ReviewerKind.choices)
    state = models.CharField(max_length=10, choices=ReviewItemState.choices, default=ReviewItemState.OPEN)
    decision = models.CharField(max_length=20, choices=ReviewDecision.choices, blank=True)
    new_level = models.CharField(max_length=50, blank=True)
    comment = limited_text(SHORT_TEXT, "The comment", blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by_rule = models.BooleanField(default=False, help_text="Decided by the campaign's rule at the due date.")
    trail = models.JSONField(default=list, blank=True, help_text="Each stage's decision, in order.")
    escalated_at = models.DateTimeField(null=True, blank=True)
    apply_error = models.CharField(max_length=500, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True, help_text="When the engine confirmed the change.")
    history = HistoricalRecords()

    class Meta:
        ordering = ["campaign", "employee_name", "application_name", "id"]
        indexes = [
            models.Index(fields=["reviewer", "state", "campaign"], name="reviewitem_inbox_idx"),
            models.Index(fields=["campaign", "state"], name="reviewitem_campaign_state_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "entitlement"],
                name="reviewitem_one_per_entitlement",
                violation_error_message="This entitlement is already in the campaign.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.employee_name} · {self.application_name} ({self.level})"

    @property
    def is_open(self) -> bool:
        return self.state == ReviewItemState.OPEN


# --- Separation of duties ------------------------------------------------------------------------


class SoDEnforcement(models.TextChoices):
    APPROVAL = "approval", "Needs the control owner's approval"
    REFUSE = "refuse", "Refused"


class SoDRule(models.Model):
    """Two entitlements that one person must not hold together, and why.

    Each side is an application (at one level, or at any level when the level is empty) or a role.
    A request that would create the conflict either gets an extra approval step by the control owner
    (`approval`) or is refused (`refuse`); the engine never grants it silently (the task is blocked);
    existing conflicts are listed in the violations report, unless a `SoDException` in force covers
    them. Validation (same thing on both sides, a level the application does not have) is `clean`.
    """

    name = models.CharField(max_length=150, unique=True)
    reason = limited_text(SHORT_TEXT, "The reason", help_text="Why the two must not be held together.")
    first_application = models.ForeignKey(
        Application, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name="application"
    )
    first_level = models.CharField(
        max_length=50, blank=True, verbose_name="level", help_text="Empty: any level of the application."
    )
    first_role = models.ForeignKey(
        Role, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name="role"
    )
    second_application = models.ForeignKey(
        Application, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name="application"
    )
    second_level = models.CharField(
        max_length=50, blank=True, verbose_name="level", help_text="Empty: any level of the application."
    )
    second_role = models.ForeignKey(
        Role, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name="role"
    )
    enforcement = models.CharField(max_length=10, choices=SoDEnforcement.choices, default=SoDEnforcement.APPROVAL)
    control_owner = models.ForeignKey(
        Employee,
        on_delete=models.PROTECT,
        related_name="sod_rules_owned",
        help_text="Approves requests that would create the conflict, and answers for the control.",
    )
    active = models.BooleanField(default=True, help_text="Only active rules are checked.")
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        verbose_name = "separation of duties rule"
        constraints = [
            models.CheckConstraint(
                condition=(Q(first_application__isnull=True) ^ Q(first_role__isnull=True))
                & (Q(second_application__isnull=True) ^ Q(second_role__isnull=True)),
                name="sodrule_each_side_one_thing",
                violation_error_message="Each side is either an application or a role, not both and not neither.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def side_label(self, which: str) -> str:
        application = getattr(self, f"{which}_application")
        if application is not None:
            level = getattr(self, f"{which}_level")
            return f"{application.name} ({level or 'any level'})"
        return f"role {getattr(self, f'{which}_role')}"

    @property
    def first_label(self) -> str:
        return self.side_label("first")

    @property
    def second_label(self) -> str:
        return self.side_label("second")

    def clean(self):
        errors: dict[str, str] = {}
        if self.name is not None and not self.name.strip():
            errors["name"] = "Give the rule a name."
        if not (self.reason or "").strip():
            errors["reason"] = "Say why the two must not be held together: a reason is required."
        for which in ("first", "second"):
            app_id, role_id = getattr(self, f"{which}_application_id"), getattr(self, f"{which}_role_id")
            level = getattr(self, f"{which}_level")
            if bool(app_id) == bool(role_id):
                errors[f"{which}_application"] = f"The {which} side is either an application or a role: choose one."
            elif role_id and level:
                errors[f"{which}_level"] = "A level belongs to an application side; leave it empty for a role."
            elif app_id and level and level not in getattr(self, f"{which}_application").access_levels:
                application = getattr(self, f"{which}_application")
                errors[f"{which}_level"] = (
                    f"{application} has no level {level!r}; choose one of {', '.join(application.access_levels)}."
                )
        if errors:
            raise ValidationError(errors)
        if self.first_application_id and self.first_application_id == self.second_application_id:
            if self.first_level == self.second_level:
                raise ValidationError("Both sides name the same thing; a rule needs two different entitlements.")
            raise ValidationError(
                "Both sides name the same application: one person holds one level of an application at a time, "
                "so this rule could never match. Name two applications, or an application and a role."
            )
        if self.first_role_id and self.second_role_id:
            if self.first_role_id == self.second_role_id:
                raise ValidationError("Both sides name the same thing; a rule needs two different entitlements.")
            raise ValidationError(
                "Both sides are roles: a person has one role at a time, so this rule could never match. "
                "Name an application on at least one side."
            )


class SoDException(models.Model):
    """A person allowed to hold a rule's conflict for a time: who approved it, why, from when to when.

    In force from `starts_on` through `ends_on` unless ended early (`ended_at`). Made by IT in the
    admin, or by the control owner's approval of an access request that creates the conflict.
    """

    rule = models.ForeignKey(SoDRule, on_delete=models.PROTECT, related_name="exceptions")
    employee = models.ForeignKey(Employee, on_delete=models.PROTECT, related_name="sod_exceptions")
    starts_on = models.DateField()
    ends_on = models.DateField()
    reason = limited_text(SHORT_TEXT, "The reason", help_text="Why this person may hold both.")
    approved_by = models.ForeignKey(
        Employee, on_delete=models.PROTECT, related_name="sod_exceptions_approved", help_text="Who approved it."
    )
    access_request = models.ForeignKey(
        "accounts.AccessRequest",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="sod_exceptions",
        editable=False,
        help_text="The request whose control-owner approval made this exception.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True, editable=False, help_text="Ended early by IT.")
    history = HistoricalRecords()

    class Meta:
        ordering = ["-starts_on", "-id"]
        verbose_name = "separation of duties exception"
        indexes = [models.Index(fields=["employee", "rule"], name="sodexception_emp_rule_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_on__gte=models.F("starts_on")),
                name="sodexception_ends_after_start",
                violation_error_message="The exception's end date is before its start date.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.employee.full_name} · {self.rule} (until {self.ends_on:%d %b %Y})"

    def in_force(self, day: datetime.date | None = None) -> bool:
        day = day or timezone.localdate()
        return self.ended_at is None and self.starts_on <= day <= self.ends_on


# --- Scoped administration -----------------------------------------------------------------------


class AdminScope(models.Model):
    """The departments and locations one staff login (an IT helpdesk member) is limited to in the admin and API.

    A person is in scope when their department is one of `departments` or their location one of
    `locations` (either is enough; sub-departments are not included). Every row a scoped user reads or
    writes goes through `accounts.scoping.restrict`; a user without a row is not restricted. Saved and
    removed only through `accounts.services.scopes` (history and an audit event); a scope naming
    neither a department nor a location is refused there, and `restrict` treats one as "sees nothing".
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="admin_scope",
        help_text="An IT helpdesk login (not an IT admin, an auditor or a superuser).",
    )
    departments = models.ManyToManyField(
        Department, blank=True, related_name="+", help_text="People in these departments (not their sub-departments)."
    )
    locations = models.ManyToManyField(
        Location, blank=True, related_name="+", help_text="People at these locations, and hardware kept there."
    )
    note = models.CharField(max_length=200, blank=True, help_text="Why, e.g. “Berlin office desk”.")
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(m2m_fields=[departments, locations])

    class Meta:
        ordering = ["user__username"]
        verbose_name = "admin scope"

    def __str__(self) -> str:
        return f"Scope of {self.user.get_username()}"
