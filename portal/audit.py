"""The audit log: services call `audit_record` for every security-relevant change.

Each event is appended to the hash chain (`portal.auditchain.events_append`): a sequence number and a
hash chained to the previous event, its personal values apart as salted commitments.
"""

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from portal.auditchain import events_append
from portal.models import AuditEvent


def audit_record(
    *,
    action: str,
    target: models.Model,
    acting_user=None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event. Runs inside the caller's transaction, so it commits or rolls back with the change.

    The target must be saved (its primary key is what the event points at). `detail` may hold
    dates, decimals and UUIDs; they are stored as their JSON text form. What happened is the
    `action` alone: `detail` may not name it again under an "event" key.
    """
    event = _event(action=action, target=target, acting_user=acting_user, detail=detail)
    events_append([event])
    return event


def audit_record_many(*, events: list[tuple[str, models.Model, dict | None]], acting_user=None) -> int:
    """Append many events by one actor at once (an import of thousands of rows): `(action, target, detail)` each.

    The same checks and the same rows as `audit_record` for each, in order, inserted 500 at a time
    inside the caller's transaction, the chain locked once for all. Returns how many were written.
    """
    rows = [
        _event(action=action, target=target, acting_user=acting_user, detail=detail)
        for action, target, detail in events
    ]
    events_append(rows)
    return len(rows)


def _event(*, action: str, target: models.Model, acting_user, detail: dict | None) -> AuditEvent:
    if target.pk is None:
        raise ValueError(f"Save the {target._meta.verbose_name} before recording an audit event about it.")
    if action not in AuditEvent.Action.values:
        raise ValueError(f"Unknown audit action {action!r}.")
    if detail and "event" in detail:
        raise ValueError(
            f"Audit detail may not carry an 'event' key ({detail['event']!r}): "
            "give the event its own AuditEvent.Action member and pass it as `action`."
        )
    has_actor = bool(getattr(acting_user, "pk", None))
    return AuditEvent(
        action=action,
        actor=acting_user if has_actor else None,
        actor_repr=(acting_user.get_username() if has_actor else "system")[:150],
        target_type=target._meta.label,
        target_id=str(target.pk),
        target_repr=str(target)[:255],
        detail=json.loads(json.dumps(detail or {}, cls=DjangoJSONEncoder)),
    )
