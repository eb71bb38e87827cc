"""Models of the lifecycle engine: checklist templates, runs, tasks and hardware returns.

A `ChecklistTemplate` (join, move or leave) says which people it applies to and holds
`TaskTemplate`s. Starting a lifecycle event creates a `ChecklistRun` for one employee and
materialises its `Task`s; automated tasks are run by the queue, manual ones by a person.
A leaver gets one `HardwareReturn` per asset they hold.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase
from simple_history.models import HistoricalRecords

from accounts.models import Department, Employee, EmploymentType, Location, Role
from assets.models import HardwareAsset
from portal.limits import LONG_TEXT, SHORT_TEXT, limited_text


class ChecklistKind(models.TextChoices):
    JOIN = "join", "Join"
    MOVE = "move", "Move"
    LEAVE = "leave", "Leave"
    ACCESS = "access", "Access change"


class Assignee(models.TextChoices):
    SYSTEM = "system", "System (automated)"
    IT = "it", "IT"
    MANAGER = "manager", "Manager"
    EMPLOYEE = "employee", "Employee"
    APP_OWNER = "app_owner", "Application owner"


class ChecklistTemplate(models.Model):
    """A list of tasks for one kind of lifecycle event, and whom it applies to.

    Empty scopes mean "everyone": a template with no roles applies to every role, and so on.
    """

    name = models.CharField(max_length=150, unique=True)
    kind = models.CharField(max_length=10, choices=ChecklistKind.choices)
    description = limited_text(LONG_TEXT, "The description", blank=True)
    is_active = models.BooleanField(default=True)
    roles = models.ManyToManyField(Role, blank=True, related_name="checklist_templates")
    departments = models.ManyToManyField(Department, blank=True, related_name="checklist_templates")
    locations = models.ManyToManyField(Location, blank=True, related_name="checklist_templates")
    employment_types = models.JSONField(
        default=list, blank=True, help_text='Employment types it applies to, e.g. ["full_time"]; empty for all.'
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["kind", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    def clean(self):
        valid = set(EmploymentType.values)
        if not isinstance(self.employment_types, list) or not set(self.employment_types) <= valid:
            raise ValidationError(
                {"employment_types": f"Give a list chosen from: {', '.join(sorted(valid))} (or an empty list)."}
            )


class TaskTemplate(models.Model):
    """One step of a checklist template: what to do, who does it, when, and after which steps.

    `action` names an automated action from `offboarding.actions` (empty for a task a person
    does); `due_offset_days` is relative to the event date (negative: before it).
    """

    checklist = models.ForeignKey(ChecklistTemplate, on_delete=models.CASCADE, related_name="task_templates")
    key = models.SlugField(max_length=50, help_text="Short unique name within the checklist, e.g. disable-login.")
    position = models.PositiveSmallIntegerField(default=0)
    title = models.CharField(max_length=200)
    instructions = limited_text(LONG_TEXT, "The instructions", blank=True)
    knowledge_url = models.URLField(blank=True)
    assignee = models.CharField(max_length=20, choices=Assignee.choices, default=Assignee.IT)
    action = models.CharField(max_length=50, blank=True, help_text="Automated action; empty for a manual task.")
    params = models.JSONField(default=dict, blank=True)
    due_offset_days = models.IntegerField(
        default=0, help_text="Days after the event date (negative: before it); an automated task runs from then."
    )
    max_attempts = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Tries of the automated action before the task fails; empty for the default.",
    )
    depends_on = models.ManyToManyField(
        "self",
        symmetrical=False,
        blank=True,
        related_name="dependents",
        help_text="Steps of this checklist that must be done (or skipped) first.",
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["checklist", "position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["checklist", "key"],
                name="tasktemplate_key_unique",
                violation_error_message="Another task of this checklist already has this key.",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    def clean(self):
        from offboarding.actions import registry

        if self.action and self.action not in registry:
            raise ValidationError(
                {"action": f"Unknown action {self.action!r}; choose one of {', '.join(sorted(registry))}."}
            )
        if self.assignee == Assignee.SYSTEM and not self.action:
            raise ValidationError({"action": "A task done by the system needs an automated action."})
        if not isinstance(self.params, dict):
            raise ValidationError({"params": "Parameters must be a JSON object."})


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"


OPEN_RUN_STATUSES = (RunStatus.RUNNING,)


class ChecklistRun(models.Model):
    """One lifecycle event of one employee, with its tasks.

    At most one open run of each kind per employee (two concurrent terminations make one run).
    `effective_at` is the moment the event takes effect: first day for a joiner, cut-off for
    a leaver. Figures: time to provision (join: effective_at → run done) and time to deprovision
    (leave: effective_at → last automated revocation confirmed).
    """

    employee = models.ForeignKey(Employee, on_delete=models.PROTECT, related_name="checklist_runs")
    kind = models.CharField(max_length=10, choices=ChecklistKind.choices)
    event_date = models.DateField()
    effective_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.RUNNING)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)
    last_revocation_at = models.DateTimeField(null=True, blank=True)
    time_to_provision = models.DurationField(null=True, blank=True)
    time_to_deprovision = models.DurationField(null=True, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "kind"], name="run_status_kind_idx"),
            models.Index(fields=["employee", "kind", "status"], name="run_employee_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["employee", "kind"],
                condition=Q(status="running"),
                name="run_one_open_per_kind",
                violation_error_message="This employee already has an open checklist of this kind.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} · {self.employee.full_name} · {self.event_date:%Y-%m-%d}"


class TaskStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


FINISHED_TASK_STATUSES = (TaskStatus.DONE, TaskStatus.SKIPPED)


class Task(models.Model):
    """One step of a run. Automated tasks are claimed by the queue with a conditional update
    (`queued → running`), so a second delivery finds nothing to claim; `key` is unique within
    the run, so materialising or fanning out twice creates nothing twice.
    """

    run = models.ForeignKey(ChecklistRun, on_delete=models.CASCADE, related_name="tasks")
    template = models.ForeignKey(TaskTemplate, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    key = models.CharField(max_length=100)
    title = models.CharField(max_length=200)
    instructions = limited_text(LONG_TEXT, "The instructions", blank=True)
    knowledge_url = models.URLField(blank=True)
    assignee_type = models.CharField(max_length=20, choices=Assignee.choices, default=Assignee.IT)
    assignee = models.ForeignKey(
        Employee, null=True, blank=True, on_delete=models.SET_NULL, related_name="checklist_tasks"
    )
    action = models.CharField(max_length=50, blank=True)
    params = models.JSONField(default=dict, blank=True)
    due_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=TaskStatus.choices, default=TaskStatus.PENDING)
    depends_on = models.ManyToManyField("self", symmetrical=False, blank=True, related_name="dependents")
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=5, validators=[MinValueValidator(1)])
    not_before = models.DateTimeField(null=True, blank=True, help_text="Retry backoff: not run before this time.")
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = limited_text(
        SHORT_TEXT, "The note", blank=True, help_text="Why it was skipped or retried, or what was done."
    )
    last_reminded_at = models.DateTimeField(null=True, blank=True)
    failure_alerted_at = models.DateTimeField(
        null=True, blank=True, help_text="When IT was told this task failed for good (once per failure)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        # run_id, not run: ordering by the relation would join the run table on every task query.
        ordering = ["run_id", "due_at", "id"]
        indexes = [
            models.Index(fields=["status", "queued_at"], name="task_status_queued_idx"),
            models.Index(fields=["status", "started_at"], name="task_status_started_idx"),
            models.Index(fields=["status", "due_at"], name="task_status_due_idx"),
            models.Index(fields=["assignee", "status"], name="task_assignee_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "key"],
                name="task_key_unique_in_run",
                violation_error_message="This run already has a task with this key.",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_automated(self) -> bool:
        return bool(self.action) and self.assignee_type == Assignee.SYSTEM

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_TASK_STATUSES

    def is_overdue(self, now=None) -> bool:
        """Not finished (done or skipped) and its due time has passed."""
        return not self.is_finished and self.due_at < (now or timezone.now())


class ReturnMethod(models.TextChoices):
    DROP_OFF = "drop_off", "Drop-off"
    COURIER = "courier", "Courier"


class ReturnStatus(models.TextChoices):
    OPEN = "open", "Waiting for the employee"
    SHIPPED = "shipped", "Shipped or dropped off"
    RECEIVED = "received", "Received by IT"
    CANCELLED = "cancelled", "Cancelled"


class ReturnCondition(models.TextChoices):
    GOOD = "good", "Good"
    DAMAGED = "damaged", "Damaged (to repair)"
    MISSING_PARTS = "missing_parts", "Missing parts (to repair)"


class HardwareReturn(models.Model):
    """One asset a person must give back: how (drop-off or courier), shipped when, received how.

    At most one open return per asset. A tracking number belongs to a courier return only.
    """

    run = models.ForeignKey(
        ChecklistRun, null=True, blank=True, on_delete=models.PROTECT, related_name="hardware_returns"
    )
    employee = models.ForeignKey(Employee, on_delete=models.PROTECT, related_name="hardware_returns")
    asset = models.ForeignKey(HardwareAsset, on_delete=models.PROTECT, related_name="returns")
    status = models.CharField(max_length=10, choices=ReturnStatus.choices, default=ReturnStatus.OPEN)
    due_date = models.DateField()
    method = models.CharField(max_length=10, choices=ReturnMethod.choices, blank=True)
    drop_off_location = models.ForeignKey(
        Location, null=True, blank=True, on_delete=models.PROTECT, related_name="hardware_returns"
    )
    drop_off_date = models.DateField(null=True, blank=True)
    carrier = models.CharField(max_length=50, blank=True)
    tracking_number = models.CharField(max_length=100, blank=True)
    shipped_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(null=True, blank=True)
    received_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    condition = models.CharField(max_length=20, choices=ReturnCondition.choices, blank=True)
    reminders_sent = models.PositiveSmallIntegerField(default=0)
    last_reminded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["due_date", "id"]
        indexes = [
            models.Index(fields=["status", "due_date"], name="return_status_due_idx"),
            models.Index(fields=["employee", "status"], name="return_employee_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["asset"],
                condition=Q(status__in=["open", "shipped"]),
                name="return_one_open_per_asset",
                violation_error_message="This asset already has an open return.",
            ),
            models.CheckConstraint(
                condition=Q(method="courier") | Q(tracking_number=""),
                name="return_tracking_only_for_courier",
                violation_error_message="A tracking number belongs to a courier return only.",
            ),
            models.CheckConstraint(
                condition=~Q(status="received") | Q(received_at__isnull=False),
                name="return_received_has_time",
                violation_error_message="A received return needs the time it was received.",
            ),
        ]

    def __str__(self) -> str:
        return f"Return of {self.asset.asset_tag} by {self.employee.full_name}"


class ChangeRequestKind(models.TextChoices):
    MOVE = "move", "Move (new role, department or manager)"
    LEAVE = "leave", "Leave"


class ChangeRequestStatus(models.TextChoices):
    PENDING = "pending", "Waiting for IT"
    CONFIRMED = "confirmed", "Confirmed by IT"
    DECLINED = "declined", "Declined by IT"
    CANCELLED = "cancelled", "Cancelled"


class ChangeRequest(models.Model):
    """A manager asks IT to move or off-board one of their reports; IT confirms it (starting the run) or declines.

    At most one pending request of each kind per employee. A move names at least one of the new
    role, department or manager; a leave names the last day.
    """

    employee = models.ForeignKey(Employee, on_delete=models.PROTECT, related_name="change_requests")
    kind = models.CharField(max_length=10, choices=ChangeRequestKind.choices)
    status = models.CharField(max_length=10, choices=ChangeRequestStatus.choices, default=ChangeRequestStatus.PENDING)
    requested_by = models.ForeignKey(Employee, on_delete=models.PROTECT, related_name="change_requests_made")
    new_role = models.ForeignKey(Role, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    new_department = models.ForeignKey(Department, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    new_manager = models.ForeignKey(Employee, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    effective_date = models.DateField(help_text="The move's first day in the new position, or the leaver's last day.")
    reason = limited_text(SHORT_TEXT, "The reason")
    created_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = limited_text(SHORT_TEXT, "The note", blank=True)
    run = models.ForeignKey(ChecklistRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "-created_at"], name="changerequest_status_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["employee", "kind"],
                condition=Q(status="pending"),
                name="changerequest_one_pending_per_kind",
                violation_error_message="There is already a request of this kind waiting for IT for this person.",
            ),
            models.CheckConstraint(
                condition=Q(reason__regex=r"\S"),
                name="changerequest_reason_required",
                violation_error_message="Give a reason.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display().split(' (')[0]} request for {self.employee.full_name}"


# django-guardian object permissions with direct foreign keys.
class ChecklistRunUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(ChecklistRun, on_delete=models.CASCADE)


class ChecklistRunGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(ChecklistRun, on_delete=models.CASCADE)


class TaskUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Task, on_delete=models.CASCADE)


class TaskGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Task, on_delete=models.CASCADE)


class HardwareReturnUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(HardwareReturn, on_delete=models.CASCADE)


class HardwareReturnGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(HardwareReturn, on_delete=models.CASCADE)
