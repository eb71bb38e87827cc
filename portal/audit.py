"""The audit log: services call `audit_record` for every security-relevant change."""

from typing import Any

from django.db import models

from portal.models import AuditEvent


def audit_record(
    *,
    action: str,
    target: models.Model,
    acting_user=None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event. Runs inside the caller's transaction, so it commits or rolls back with the change."""
    return AuditEvent.objects.create(
        action=action,
        actor=acting_user if getattr(acting_user, "pk", None) else None,
        actor_repr=(acting_user.get_username() if getattr(acting_user, "pk", None) else "system")[:150],
        target_type=target._meta.label,
        target_id=str(target.pk),
        target_repr=str(target)[:255],
        detail=detail or {},
    )
