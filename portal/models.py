"""Shared models that every app may write to. This module imports no Portal app."""

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import models


class AuditEventQuerySet(models.QuerySet):
    """Bulk writes that would bypass AuditEvent.save()/delete() are refused too.

    A retention purge that must remove events uses `AuditEvent._base_manager` on purpose.
    """

    def update(self, **kwargs):
        raise PermissionDenied("Audit events are append-only.")

    def delete(self):
        raise PermissionDenied("Audit events are append-only.")


class AuditEvent(models.Model):
    """One security-relevant event (grant, revoke, check-out, terminate, purge ...).

    Append-only: a saved event cannot be changed or deleted through the ORM.
    The target is stored as model label + primary key + a text snapshot, so the
    event survives the deletion or anonymisation of what it points to.
    """

    class Action(models.TextChoices):
        GRANT = "grant", "Access granted"
        REVOKE = "revoke", "Access revoked"
        REQUEST = "request", "Access requested"
        APPROVE = "approve", "Approved"
        REJECT = "reject", "Rejected"
        CHECK_OUT = "check_out", "Asset checked out"
        CHECK_IN = "check_in", "Asset checked in"
        ASSET_STATUS = "asset_status", "Asset status changed"
        TERMS = "terms", "Terms accepted"
        TERMINATE = "terminate", "Employee terminated"
        PURGE = "purge", "Personal data purged"
        DELETE = "delete", "Deleted"
        IMPORT = "import", "Imported"
        # People
        EMPLOYEE_CREATED = "employee_created", "Employee created"
        STATUS_CHANGED = "status_changed", "Employee status changed"
        LOGIN_DISABLED = "login_disabled", "Login disabled"
        EMPLOYEE_MOVED = "employee_moved", "Employee moved (role, department or manager)"
        # Access: levels, requests, approvals and delegations
        LEVEL_CHANGED = "level_changed", "Access level changed"
        ACCESS_REQUEST_CANCELLED = "access_request_cancelled", "Access request cancelled"
        APPROVAL_HANDED_OVER = "approval_handed_over", "Approval handed over by a leaver"
        APPROVAL_MOVED = "approval_moved", "Approval moved to the new manager"
        OWNER_HANDED_OVER = "owner_handed_over", "Application ownership handed over"
        DELEGATION_CREATED = "delegation_created", "Approvals delegated"
        DELEGATION_CANCELLED = "delegation_cancelled", "Delegation cancelled"
        # Hardware
        ASSET_RESERVED = "asset_reserved", "Asset reserved"
        ASSET_RESERVATION_RELEASED = "asset_reservation_released", "Asset reservation released"
        RETURN_REQUESTED = "return_requested", "Hardware return requested"
        RETURN_SHIPPED = "return_shipped", "Hardware return shipped"
        RETURN_RECEIVED = "return_received", "Hardware return received"
        # Checklists (one "started" member per checklist kind; the cancelled kind is in the detail)
        JOIN_STARTED = "join_started", "Join checklist started"
        MOVE_STARTED = "move_started", "Move checklist started"
        LEAVE_STARTED = "leave_started", "Leave checklist started"
        ACCESS_STARTED = "access_started", "Access-change checklist started"
        RUN_CANCELLED = "run_cancelled", "Checklist cancelled"
        TASK_RETRIED = "task_retried", "Checklist task retried"
        TASK_SKIPPED = "task_skipped", "Checklist task skipped"
        TASK_FAILED = "task_failed", "Checklist task failed for good (IT alerted)"
        # Manager change requests
        CHANGE_REQUESTED = "change_requested", "Change requested by a manager"
        CHANGE_CONFIRMED = "change_confirmed", "Change request confirmed by IT"
        CHANGE_DECLINED = "change_declined", "Change request declined by IT"
        # Sign-in
        SIGN_IN_LOCKED = "sign_in_locked", "Sign-in locked after repeated failures"
        SIGN_IN_UNLOCKED = "sign_in_unlocked", "Sign-in lock lifted by IT"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who did it; empty for the system.",
    )
    actor_repr = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=40, choices=Action.choices, db_index=True)
    target_type = models.CharField(max_length=100)
    target_id = models.CharField(max_length=64)
    target_repr = models.CharField(max_length=255)
    detail = models.JSONField(default=dict, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id"], name="audit_target_idx")]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_repr or 'system'} {self.action} {self.target_repr}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise PermissionDenied("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionDenied("Audit events are append-only.")
