"""The mover flow: a change of role, department or manager, previewed first, then applied as a move run.

Additions are provisioned from the effective date; revocations wait `MOVER_GRACE_DAYS` and
re-check, when they run, that nothing justifies the access then.
"""

import datetime
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.event_data import employee_data
from accounts.models import (
    LIVE_ENTITLEMENT_STATUSES,
    AccessRequest,
    AccessRequestStatus,
    Application,
    Employee,
    EmployeeStatus,
    Entitlement,
    EntitlementSource,
    EntitlementStatus,
    Role,
)
from accounts.services import approval_steps, employees
from accounts.services.provisioning import entitlement_plan
from accounts.services.sod import SoDConflict, SoDScenario, sod_conflicts
from offboarding import engine
from offboarding.conf import lifecycle_setting
from offboarding.flows.common import aware
from offboarding.models import (
    ChecklistKind,
    ChecklistRun,
)
from portal.audit import audit_record
from portal.events import event_emit
from portal.history import set_history_user
from portal.models import AuditEvent, EventType

MOVER_FIELDS = ("role", "department", "manager")


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = _Unchanged()


@dataclass(frozen=True)
class PreviewLine:
    """One application in a mover preview, and why it is added, revoked or kept."""

    application: Application
    level: str
    reason: str
    entitlement: Entitlement | None = None
    new_level: str | None = None  # kept, but the new role's birthright asks for another level


@dataclass(frozen=True)
class MoverConflict:
    """A separation-of-duties rule the move would make the person break. `lasting`: still broken once
    the revocations are done; otherwise only during the grace period, while the old access remains."""

    conflict: SoDConflict
    lasting: bool


@dataclass(frozen=True)
class MoverPreview:
    """What a change of role, department or manager does to a person's access. Nothing is written."""

    employee: Employee
    changes: dict = field(default_factory=dict)  # field name → (old, new)
    add: list[PreviewLine] = field(default_factory=list)
    revoke: list[PreviewLine] = field(default_factory=list)
    keep: list[PreviewLine] = field(default_factory=list)
    conflicts: list[MoverConflict] = field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)


def _birthrights(role: Role | None) -> dict:
    if role is None:
        return {}
    return {ra.application_id: ra for ra in role.birthrights.select_related("application")}


def _approved_requests(employee: Employee) -> list[AccessRequest]:
    today = timezone.localdate()
    return list(
        AccessRequest.objects.filter(employee=employee, status=AccessRequestStatus.APPROVED)
        .filter(Q(end_date__isnull=True) | Q(end_date__gte=today))
        .order_by("-decided_at", "-pk")
    )


def _justification(entitlement: Entitlement, *, role: Role | None, birthrights: dict, requests: list) -> str | None:
    """Why the entitlement may stay for someone in `role`, or None when nothing justifies it any more."""
    if entitlement.application_id in birthrights:
        return f"birthright of {role}"
    for request in requests:
        if request.application_id == entitlement.application_id and request.entitlement_id in (None, entitlement.pk):
            return f"approved access request #{request.pk}"
    if entitlement.source == EntitlementSource.REQUEST:
        return "granted through an access request"
    if entitlement.source == EntitlementSource.MANUAL:
        return "granted by hand, not as a role birthright"
    if entitlement.source == EntitlementSource.IMPORT:
        return "imported, not a role birthright"
    return None


def entitlement_justification(*, entitlement: Entitlement) -> str | None:
    """Why the holder's current role or requests justify this entitlement now (None: nothing does)."""
    employee = Employee.objects.select_related("role").get(pk=entitlement.employee_id)
    return _justification(
        entitlement,
        role=employee.role,
        birthrights=_birthrights(employee.role),
        requests=_approved_requests(employee),
    )


def mover_preview(*, employee: Employee, role=UNCHANGED, department=UNCHANGED, manager=UNCHANGED) -> MoverPreview:
    """Compare the employee's access with what the new role justifies.

    - add: birthrights of the new role the person does not hold;
    - keep: what the new role, an approved access request, or a non-birthright grant (by hand,
      by request, imported) still justifies, with the reason; a differing birthright level is
      shown as `new_level`;
    - revoke: birthright access nothing justifies any more.
    Access being revoked already is left out.
    """
    employee = Employee.objects.select_related("role", "department", "manager").get(pk=employee.pk)
    proposed = {"role": role, "department": department, "manager": manager}
    changes = {}
    for name, value in proposed.items():
        if value is UNCHANGED:
            continue
        current = getattr(employee, name)
        if (current.pk if current else None) != (value.pk if value else None):
            changes[name] = (current, value)
    old_role = employee.role
    new_role = changes["role"][1] if "role" in changes else old_role
    old_birthrights, new_birthrights = _birthrights(old_role), _birthrights(new_role)
    requests = _approved_requests(employee)
    add, revoke, keep = [], [], []
    live = list(
        Entitlement.objects.filter(
            employee=employee, status__in=[EntitlementStatus.PENDING, EntitlementStatus.ACTIVE]
        ).select_related("application")
    )
    held = set(
        Entitlement.objects.filter(employee=employee, status__in=LIVE_ENTITLEMENT_STATUSES).values_list(
            "application_id", flat=True
        )
    )
    for entitlement in sorted(live, key=lambda e: e.application.name):
        reason = _justification(entitlement, role=new_role, birthrights=new_birthrights, requests=requests)
        if reason is None:
            if entitlement.application_id in old_birthrights:
                why = f"birthright of {old_role}, not of {new_role or 'the new role (none)'}"
            else:
                why = f"role birthright that {new_role or 'no role'} does not include"
            revoke.append(PreviewLine(entitlement.application, entitlement.level, why, entitlement))
            continue
        birthright = new_birthrights.get(entitlement.application_id)
        new_level = None
        if (
            birthright is not None
            and birthright.access_level != entitlement.level
            and entitlement.source == EntitlementSource.BIRTHRIGHT
        ):
            new_level = birthright.access_level
            reason = f"{reason}; level {entitlement.level} → {new_level}"
        keep.append(PreviewLine(entitlement.application, entitlement.level, reason, entitlement, new_level))
    for app_id, birthright in sorted(new_birthrights.items(), key=lambda kv: kv[1].application.name):
        if app_id not in held:
            add.append(PreviewLine(birthright.application, birthright.access_level, f"birthright of {new_role}"))
    return MoverPreview(
        employee=employee,
        changes=changes,
        add=add,
        revoke=revoke,
        keep=keep,
        conflicts=_move_conflicts(employee, new_role=new_role, add=add, revoke=revoke, keep=keep),
    )


def _move_conflicts(employee: Employee, *, new_role, add, revoke, keep) -> list[MoverConflict]:
    """The rules the move would newly break: during the grace period (old access still held, new access
    and role given) and after the revocations; one `sod_conflicts` call for both."""
    gained = tuple((line.application.pk, line.level) for line in add) + tuple(
        (line.application.pk, line.new_level) for line in keep if line.new_level
    )
    role_id = new_role.pk if new_role else None
    scenarios = {
        "grace": SoDScenario(employee_id=employee.pk, add=gained, role_id=role_id),
        "after": SoDScenario(
            employee_id=employee.pk,
            add=gained,
            remove=frozenset(line.application.pk for line in revoke),
            role_id=role_id,
        ),
    }
    found = sod_conflicts(scenarios=scenarios)
    if not found:
        return []
    lasting = {c.rule.pk for c in found["after"] if c.new}
    return [MoverConflict(c, c.rule.pk in lasting) for c in found["grace"] if c.new]


def _ref(obj) -> dict | None:
    return {"id": obj.pk, "name": str(obj)} if obj is not None else None


@transaction.atomic
def mover_apply(
    *, employee: Employee, changes: dict, acting_user, effective_date: datetime.date | None = None
) -> ChecklistRun:
    """Apply a change of role, department and/or manager and start (or extend) the move run.

    `changes` maps some of `role`, `department`, `manager` to their new values (None clears).
    The employee is saved with history now. From `effective_date` (default today: now),
    the new role's missing birthrights are provisioned and levels changed; revocations are due
    `MOVER_GRACE_DAYS` later and re-check, when they run, that nothing justifies the access
    then (a second move may have brought it back). A second move while the run is open adds
    its tasks to the same run. Refused when nothing changes or the employee is terminated.
    """
    unknown = sorted(set(changes) - set(MOVER_FIELDS))
    if unknown:
        raise ValidationError(f"A move changes only {', '.join(MOVER_FIELDS)}; not {', '.join(unknown)}.")
    locked = Employee.objects.select_for_update().get(pk=employee.pk)
    if locked.status == EmployeeStatus.TERMINATED:
        raise ValidationError(f"{locked.full_name} is terminated; they cannot move.")
    preview = mover_preview(employee=locked, **changes)
    if not preview.has_changes:
        raise ValidationError(f"Nothing changes for {locked.full_name}: role, department and manager are the same.")
    employees.employee_update(
        employee=locked, changes={name: new for name, (_, new) in preview.changes.items()}, acting_user=acting_user
    )
    now = timezone.now()
    today = timezone.localdate()
    effective_date = effective_date or today
    effective_at = now if effective_date <= today else aware(effective_date)
    run = engine.run_start(
        employee=locked,
        kind=ChecklistKind.MOVE,
        event_date=effective_date,
        acting_user=acting_user,
        effective_at=effective_at,
    )
    if "manager" in preview.changes:
        approval_steps.approval_steps_follow_manager(employee=locked, acting_user=acting_user)
    grace = datetime.timedelta(days=lifecycle_setting("MOVER_GRACE_DAYS"))
    record = {
        "at": now.isoformat(),
        "effective_at": effective_at.isoformat(),
        "changes": {name: [_ref(old), _ref(new)] for name, (old, new) in preview.changes.items()},
        "add": [],
        "revoke": [],
        "keep": [{"entitlement": line.entitlement.pk, "reason": line.reason} for line in preview.keep],
    }
    for line in preview.add:
        entitlement = entitlement_plan(
            employee=locked,
            application=line.application,
            level=line.level,
            source=EntitlementSource.BIRTHRIGHT,
            acting_user=acting_user,
        )
        engine.task_add(
            run=run,
            key=f"provision:{entitlement.pk}",
            title=f"Give access to {line.application} ({line.level})",
            action="provision_entitlement",
            params={"entitlement": entitlement.pk},
            due_at=effective_at,
        )
        record["add"].append({"entitlement": entitlement.pk, "reason": line.reason})
    for line in preview.keep:
        if line.new_level:
            engine.task_add(
                run=run,
                key=f"level:{line.entitlement.pk}:{line.new_level}",
                title=f"Change {line.application} access to {line.new_level}",
                action="change_entitlement_level",
                params={"entitlement": line.entitlement.pk, "level": line.new_level},
                due_at=effective_at,
            )
    for line in preview.revoke:
        engine.task_add(
            run=run,
            key=f"revoke:{line.entitlement.pk}",
            title=f"Revoke {line.application} ({line.level}) after the grace period",
            action="revoke_entitlement",
            params={"entitlement": line.entitlement.pk, "reason": f"Move: {line.reason}", "recheck": True},
            due_at=effective_at + grace,
        )
        record["revoke"].append({"entitlement": line.entitlement.pk, "reason": line.reason})
    run.refresh_from_db()
    run.details = {**run.details, "moves": [*run.details.get("moves", []), record]}
    set_history_user(run, acting_user)
    run.save(update_fields=["details"])
    audit_record(
        action=AuditEvent.Action.EMPLOYEE_MOVED,
        target=locked,
        acting_user=acting_user,
        detail={"run": run.pk, "changes": record["changes"]},
    )
    event_emit(
        event_type=EventType.EMPLOYEE_MOVED,
        data=lambda: {
            **employee_data(locked),
            "changes": record["changes"],
            "effective_at": effective_at,
            "run": run.pk,
        },
    )
    engine.run_advance(run=run)
    return run
