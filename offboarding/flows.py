"""Joiner, mover and leaver flows: the services that start lifecycle runs, and the steps their actions call.

Public API (keyword-only; every one takes `acting_user`, recorded in history and the audit log):

- `joiner_start(employee=, acting_user=)` → the join run (idempotent: a second call returns it).
- `mover_preview(employee=, role=, department=, manager=)` → `MoverPreview` (add / revoke / keep,
  each line with its reason). Nothing is written.
- `mover_apply(employee=, changes=, acting_user=, effective_date=None)` → the move run: saves the
  change, provisions additions at once (from `effective_date`), revokes after
  `LIFECYCLE["MOVER_GRACE_DAYS"]`, re-checking then that nothing justifies the access any more.
- `employee_terminate(employee=, last_day=, acting_user=, immediate=False, reason="", cut_off=None)`
  → the leave run. Stable contract, relied on by reliability tests and benchmarks:
    * refused with a ValidationError (naming the field) when `last_day` is before the start
      date or the employee is already terminated;
    * idempotent and safe under concurrency: while a leave run is open, any further call returns
      that run (the employee row is locked first), so two concurrent terminations make one run;
    * `end_date` is set at once; the cut-off is now (`immediate`), `cut_off` if given, or the end
      of `last_day` (local time), never in the past. The run's `effective_at` is the cut-off;
    * at the cut-off, in this order (each step waits for the previous one, and a fan-out step's
      children): `disable_login` → `mark_terminated` (status terminated; other open join/move
      runs cancelled) → `revoke_all_access` (one `revoke_entitlement` child per live
      entitlement) → `hand_over_approvals` →
      `create_hardware_returns` → `remind_hardware_returns` (repeats every
      `REMINDER_INTERVAL_DAYS` while a return is open) → `schedule_purge` (records the purge
      date, last day + `RETENTION_DAYS` + 1, in its result and `run.details["purge_due"]`,
      and is done at once: the purge is not part of the run).
      These steps come from the leave templates; any a template lacks is added to the run
      (keys `core:<step>`), so no template can leave access in place;
    * `time_to_deprovision` = cut-off → last revocation confirmed (automated or by IT);
    * the run closes once its work is done: access revoked, approvals handed over, hardware
      returned (`hardware_return_receive`) and the people's tasks completed.
- `hardware_return_receive(item=, acting_user=, condition=, note="")`: IT has a leaver's asset
  back; it is checked in and, once nothing of the run is out, the reminders stop.
- `retention_purge(employee=, acting_user=)`: anonymise a terminated employee's personal data,
  in history rows, task texts and audit snapshots too. Idempotent.
- `retention_purge_due(now=None)`: the daily schedule (`offboarding.tasks.purge_due`) purges
  every terminated employee whose last day + `RETENTION_DAYS` has passed, in bounded batches.

Hardware rows are written only by `assets.services` (reserve, release, pending return, check-in).

The actions that run these steps live in `offboarding.actions.lifecycle`; they call the
functions below, which read the target's state first so that running one twice has its
effect once.
"""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Replace
from django.utils import timezone

from accounts import approvals
from accounts import services as account_services
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
from accounts.provisioning import entitlement_plan
from assets import services as asset_services
from assets.models import HELD_STATUSES, AssetStatus, HardwareAsset, RoleKitItem
from offboarding import services as engine
from offboarding.models import (
    Assignee,
    ChecklistKind,
    ChecklistRun,
    HardwareReturn,
    ReturnCondition,
    ReturnStatus,
    RunStatus,
    Task,
    TaskStatus,
)
from portal.audit import audit_record
from portal.history import set_history_user
from portal.mail import email_send
from portal.models import AuditEvent

logger = logging.getLogger(__name__)

MOVER_FIELDS = ("role", "department", "manager")


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = _Unchanged()


LIFECYCLE_DEFAULTS = {
    "MOVER_GRACE_DAYS": 7,
    "RETENTION_DAYS": 365,
    "RETURN_DAYS": 7,
    "REMINDER_INTERVAL_DAYS": 2,
    "RETURN_LINK_DAYS": 60,
}


def lifecycle_setting(name: str) -> int:
    """A whole number of days from `settings.LIFECYCLE` (the defaults above when a key is missing)."""
    return getattr(settings, "LIFECYCLE", {}).get(name, LIFECYCLE_DEFAULTS[name])


def _aware(day: datetime.date, at: datetime.time = datetime.time(9, 0)) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(day, at))


def end_of_day(day: datetime.date) -> datetime.datetime:
    """The first moment after `day`, in local time: a future-dated leaver's cut-off."""
    return _aware(day + datetime.timedelta(days=1), datetime.time(0, 0))


# --- Core steps: what a run must contain whatever its templates say --------------------------


@dataclass(frozen=True)
class CoreStep:
    key: str
    title: str
    action: str
    offset_days: int = 0


JOINER_STEPS = (
    CoreStep("reserve-kit", "Reserve the role's hardware kit", "reserve_kit", -21),
    CoreStep("provision-access", "Provision the role's birthright access", "provision_birthrights", -3),
    CoreStep("activate", "Activate the employee on day one", "activate_employee", 0),
)
LEAVER_STEPS = (
    CoreStep("disable-login", "Disable login and end sessions", "disable_login"),
    CoreStep("set-terminated", "Set the status to terminated", "mark_terminated"),
    CoreStep("revoke-access", "Revoke every entitlement through its connector", "revoke_all_access"),
    CoreStep("hand-over", "Hand pending approvals and owned applications to the manager", "hand_over_approvals"),
    CoreStep("hardware-returns", "Open a hardware return per asset held", "create_hardware_returns"),
    CoreStep("remind-returns", "Remind the leaver to return hardware", "remind_hardware_returns"),
    CoreStep("schedule-purge", "Record the retention purge date", "schedule_purge"),
)


def _ensure_steps(run: ChecklistRun, steps: tuple[CoreStep, ...], *, chained: bool) -> None:
    """Add to `run` each core step no template gave it (key `core:<step>`); chained: each after the previous."""
    existing: dict[str, Task] = {}
    for task in run.tasks.filter(parent__isnull=True).exclude(action="").order_by("due_at", "pk"):
        existing.setdefault(task.action, task)
    previous = None
    for step in steps:
        task = existing.get(step.action)
        if task is None:
            task = engine.task_add(
                run=run,
                key=f"core:{step.key}",
                title=step.title,
                action=step.action,
                assignee_type=Assignee.SYSTEM,
                due_at=run.effective_at + datetime.timedelta(days=step.offset_days),
                depends_on=[previous] if chained and previous is not None else None,
            )
        previous = task


# --- Joiner -----------------------------------------------------------------------------------


@transaction.atomic
def joiner_start(*, employee: Employee, acting_user) -> ChecklistRun:
    """Start the join run of a new employee, effective on their start date at 09:00 local time.

    Idempotent: the employee's existing (open or done) join run is returned. Refused for a
    terminated employee. The run always holds the core steps (kit reservation, birthright
    provisioning, activation on day one) besides whatever the join templates add.
    """
    locked = Employee.objects.select_for_update().get(pk=employee.pk)
    if locked.status == EmployeeStatus.TERMINATED:
        raise ValidationError(f"{locked.full_name} is terminated; no join checklist can start.")
    existing = (
        ChecklistRun.objects.filter(employee=locked, kind=ChecklistKind.JOIN)
        .exclude(status=RunStatus.CANCELLED)
        .order_by("-created_at", "-pk")
        .first()
    )
    if existing is not None:
        return existing
    run = engine.run_start(
        employee=locked,
        kind=ChecklistKind.JOIN,
        event_date=locked.start_date,
        acting_user=acting_user,
        effective_at=_aware(locked.start_date),
        details={"role": locked.role_id, "department": locked.department_id},
    )
    _ensure_steps(run, JOINER_STEPS, chained=False)
    engine.run_advance(run=run)
    return run


def kit_reserve(*, employee: Employee, run: ChecklistRun, parent: Task | None = None, acting_user=None) -> dict:
    """Set aside in-stock assets for each item of the employee's role kit; a purchase task for IT for what is short.

    Counts what is already reserved for or held by the employee, so a second call reserves
    nothing more. Each asset is reserved through `assets.services.asset_reserve`. Rows are locked
    with SKIP LOCKED (PostgreSQL), so concurrent reservations for two joiners never take the same
    asset. A shortage becomes one IT task per kit item
    (key `purchase:<kit item>`).
    """
    employee = Employee.objects.select_related("role").get(pk=employee.pk)
    if employee.role_id is None:
        return {"reserved": [], "purchases": []}
    reserved, purchases = [], []
    for item in RoleKitItem.objects.filter(role_id=employee.role_id).select_related("asset_model").order_by("pk"):
        with transaction.atomic():
            # The employee before the assets, the order `asset_reserve` and check-outs lock them in.
            Employee.objects.select_for_update(no_key=True).only("pk").get(pk=employee.pk)
            have = (
                HardwareAsset.objects.filter(model_id=item.asset_model_id)
                .filter(Q(reserved_for=employee) | held_by(employee))
                .count()
            )
            need = item.quantity - have
            if need <= 0:
                continue
            candidates = list(
                HardwareAsset.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(model_id=item.asset_model_id, status=AssetStatus.IN_STOCK, reserved_for__isnull=True)
                .order_by("purchase_date", "asset_tag")[:need]
            )
            for asset in candidates:
                asset_services.asset_reserve(
                    asset=asset, employee=employee, acting_user=acting_user, detail={"run": run.pk}
                )
                reserved.append(asset.asset_tag)
            missing = need - len(candidates)
        if missing > 0:
            purchase = engine.task_add(
                run=run,
                key=f"purchase:{item.pk}",
                title=f"Buy {missing} × {item.asset_model} (none in stock)",
                assignee_type=Assignee.IT,
                parent=parent,
                due_at=timezone.now(),
                instructions=(
                    f"The {item.role} kit needs {item.quantity} × {item.asset_model}; {missing} could not be "
                    f"reserved from stock for the joiner starting on {employee.start_date:%Y-%m-%d}. Order them, add "
                    "them as hardware, then check them out to the joiner on day one."
                ),
                params={"kit_item": item.pk, "missing": missing},
            )
            purchases.append(purchase.pk)
    return {"reserved": reserved, "purchases": purchases}


def held_by(employee: Employee) -> Q:
    return Q(assigned_to=employee, status__in=HELD_STATUSES)


# --- Mover ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreviewLine:
    """One application in a mover preview, and why it is added, revoked or kept."""

    application: Application
    level: str
    reason: str
    entitlement: Entitlement | None = None
    new_level: str | None = None  # kept, but the new role's birthright asks for another level


@dataclass(frozen=True)
class MoverPreview:
    """What a change of role, department or manager does to a person's access. Nothing is written."""

    employee: Employee
    changes: dict = field(default_factory=dict)  # field name → (old, new)
    add: list[PreviewLine] = field(default_factory=list)
    revoke: list[PreviewLine] = field(default_factory=list)
    keep: list[PreviewLine] = field(default_factory=list)

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
    return MoverPreview(employee=employee, changes=changes, add=add, revoke=revoke, keep=keep)


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
    account_services.employee_update(
        employee=locked, changes={name: new for name, (_, new) in preview.changes.items()}, acting_user=acting_user
    )
    now = timezone.now()
    today = timezone.localdate()
    effective_date = effective_date or today
    effective_at = now if effective_date <= today else _aware(effective_date)
    run = engine.run_start(
        employee=locked,
        kind=ChecklistKind.MOVE,
        event_date=effective_date,
        acting_user=acting_user,
        effective_at=effective_at,
    )
    if "manager" in preview.changes:
        approvals.approval_steps_follow_manager(employee=locked, acting_user=acting_user)
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
    engine.run_advance(run=run)
    return run


# --- Leaver -----------------------------------------------------------------------------------


@transaction.atomic
def employee_terminate(
    *,
    employee: Employee,
    last_day: datetime.date,
    acting_user,
    immediate: bool = False,
    reason: str = "",
    cut_off: datetime.datetime | None = None,
) -> ChecklistRun:
    """Terminate an employee now or at a future cut-off; returns the leave run (see the module docstring).

    Records are kept: the status becomes terminated at the cut-off, nothing is deleted.
    """
    locked = Employee.objects.select_for_update().get(pk=employee.pk)
    open_run = ChecklistRun.objects.filter(employee=locked, kind=ChecklistKind.LEAVE, status=RunStatus.RUNNING).first()
    if open_run is not None:
        return open_run
    if locked.status == EmployeeStatus.TERMINATED:
        raise ValidationError(f"{locked.full_name} is already terminated.")
    if last_day is None:
        raise ValidationError({"last_day": "Give the last day of work."})
    if last_day < locked.start_date:
        raise ValidationError(
            {
                "last_day": f"The last day ({last_day:%Y-%m-%d}) is before the start date "
                f"({locked.start_date:%Y-%m-%d}); a termination cannot end employment before it began."
            }
        )
    now = timezone.now()
    if immediate:
        cut_off = now
    elif cut_off is None:
        cut_off = max(end_of_day(last_day), now)
    elif cut_off < now:
        cut_off = now
    account_services.employee_update(employee=locked, changes={"end_date": last_day}, acting_user=acting_user)
    run = engine.run_start(
        employee=locked,
        kind=ChecklistKind.LEAVE,
        event_date=last_day,
        acting_user=acting_user,
        effective_at=cut_off,
        details={"immediate": immediate, "reason": reason, "cut_off": cut_off.isoformat()},
    )
    _ensure_steps(run, LEAVER_STEPS, chained=True)
    audit_record(
        action=AuditEvent.Action.TERMINATE,
        target=locked,
        acting_user=acting_user,
        detail={
            "last_day": last_day,
            "cut_off": cut_off,
            "immediate": immediate,
            "reason": reason,
            "run": run.pk,
        },
    )
    engine.run_advance(run=run)
    return run


def employee_cut_off(*, employee: Employee, run: ChecklistRun, acting_user=None) -> dict:
    """At the cut-off: status terminated; the person's own pending access requests and other open runs
    (join, move, access change) are cancelled.

    Their unfinished tasks are skipped with the reason (`services.run_cancel`); a task running
    right now finishes. Idempotent: a second call finds the status set and nothing open.
    """
    account_services.employee_set_status(
        employee=employee, status=EmployeeStatus.TERMINATED, acting_user=acting_user, reason="leaver cut-off"
    )
    withdrawn = approvals.access_requests_close_for_leaver(employee=employee, acting_user=acting_user)
    cancelled = []
    for other in ChecklistRun.objects.filter(employee_id=employee.pk, status=RunStatus.RUNNING).exclude(pk=run.pk):
        try:
            engine.run_cancel(run=other, acting_user=acting_user, reason=f"Employee terminated (leave run #{run.pk}).")
        except ValidationError:
            continue  # it closed meanwhile
        cancelled.append(other.pk)
    return {"status": EmployeeStatus.TERMINATED, "cancelled_runs": cancelled, "withdrawn_requests": withdrawn}


def hardware_returns_open(*, run: ChecklistRun, acting_user=None) -> dict:
    """One open `HardwareReturn` per asset the leaver holds, due `RETURN_DAYS` after the cut-off.

    Each asset goes to pending return (`assets.services.asset_mark_pending_return`; its holder
    stays until it is checked in); assets only reserved for the person are released back to
    stock. Idempotent: an asset with an open return gets no second one.
    """
    employee = run.employee
    due = timezone.localtime(run.effective_at).date() + datetime.timedelta(days=lifecycle_setting("RETURN_DAYS"))
    created, existing = [], []
    for asset_id in HardwareAsset.objects.filter(held_by(employee)).order_by("asset_tag").values_list("pk", flat=True):
        with transaction.atomic():
            # Locked (a read) so the return and the asset's status change together.
            asset = HardwareAsset.objects.select_for_update(of=("self",)).get(pk=asset_id)
            if asset.assigned_to_id != employee.pk or asset.status not in HELD_STATUSES:
                continue
            open_return = HardwareReturn.objects.filter(
                asset=asset, status__in=[ReturnStatus.OPEN, ReturnStatus.SHIPPED]
            ).first()
            if open_return is None:
                item = HardwareReturn(run=run, employee=employee, asset=asset, due_date=due)
                set_history_user(item, acting_user)
                item.save()
                created.append(item.pk)
            else:
                existing.append(open_return.pk)
            if asset.status == AssetStatus.ASSIGNED:
                asset_services.asset_mark_pending_return(asset=asset, acting_user=acting_user, detail={"run": run.pk})
    released = []
    for asset in HardwareAsset.objects.filter(reserved_for=employee).order_by("asset_tag"):
        try:
            asset_services.asset_release_reservation(
                asset=asset, employee=employee, acting_user=acting_user, detail={"run": run.pk}
            )
        except ValidationError:
            continue  # released or handed to someone else meanwhile
        released.append(asset.asset_tag)
    return {"created": created, "existing": existing, "released": released, "due_date": due.isoformat()}


@transaction.atomic
def hardware_return_receive(
    *, item: HardwareReturn, acting_user, condition: str = ReturnCondition.GOOD, note: str = ""
) -> HardwareReturn:
    """IT has the asset back: the return is received and the asset checked in.

    Good condition: back in stock; damaged or missing parts: into repair
    (`assets.services.asset_check_in`). An asset IT already checked in through the hardware
    admin is left as it is. Once nothing of the leave run is still out, its pending follow-up
    reminders are skipped, so the run closes as soon as its other steps are done. Refused for a
    return that is not open or shipped (received twice, or cancelled).
    """
    if condition not in ReturnCondition.values:
        raise ValidationError(f"Unknown condition {condition!r}; choose one of {', '.join(ReturnCondition.values)}.")
    item = HardwareReturn.objects.select_for_update(of=("self",)).select_related("asset").get(pk=item.pk)
    if item.status not in (ReturnStatus.OPEN, ReturnStatus.SHIPPED):
        state = "was received already" if item.status == ReturnStatus.RECEIVED else "was cancelled"
        raise ValidationError(
            f"The return of {item.asset.asset_tag} {state}; only an open or shipped return can be received."
        )
    asset = item.asset
    checked_in = asset.assigned_to_id == item.employee_id and asset.status in HELD_STATUSES
    if checked_in:
        asset_services.asset_check_in(
            asset=asset,
            acting_user=acting_user,
            condition=condition,
            to_status=AssetStatus.IN_STOCK if condition == ReturnCondition.GOOD else AssetStatus.IN_REPAIR,
            note=note or f"Returned by a leaver (return #{item.pk}).",
        )
    item.status = ReturnStatus.RECEIVED
    item.received_at = timezone.now()
    item.received_by = acting_user if getattr(acting_user, "pk", None) else None
    item.condition = condition
    set_history_user(item, acting_user)
    item.save(update_fields=["status", "received_at", "received_by", "condition"])
    audit_record(
        action=AuditEvent.Action.RETURN_RECEIVED,
        target=item,
        acting_user=acting_user,
        detail={
            "asset": asset.pk,
            "run": item.run_id,
            "condition": condition,
            "checked_in": checked_in,
        },
    )
    if item.run_id is not None:
        _stop_return_reminders(run=item.run, acting_user=acting_user)
    return item


def _stop_return_reminders(*, run: ChecklistRun, acting_user) -> None:
    """Skip the run's pending follow-up reminders when no return of the run is still out."""
    if HardwareReturn.objects.filter(run=run, status__in=[ReturnStatus.OPEN, ReturnStatus.SHIPPED]).exists():
        return
    follow_ups = Task.objects.filter(
        run=run, action="remind_hardware_returns", parent__isnull=False, status=TaskStatus.PENDING
    )
    for task in follow_ups:
        try:
            engine.task_skip(task=task, acting_user=acting_user, reason="Every item is back; no more reminders.")
        except ValidationError:
            continue  # it started meanwhile: it finds nothing open and ends by itself


def hardware_returns_remind(*, run: ChecklistRun, now: datetime.datetime | None = None) -> dict:
    """Email the leaver (personal and work address) about their open returns, at most every
    `REMINDER_INTERVAL_DAYS`. Returns how many are still open and whether a mail went out."""
    from offboarding.returns import return_link_url  # returns.py builds on this module

    now = now or timezone.now()
    interval = datetime.timedelta(days=lifecycle_setting("REMINDER_INTERVAL_DAYS"))
    open_returns = list(
        HardwareReturn.objects.filter(run=run, status=ReturnStatus.OPEN).select_related("asset__model").order_by("pk")
    )
    due_now = [r for r in open_returns if r.last_reminded_at is None or r.last_reminded_at <= now - interval]
    sent = False
    if due_now:
        employee = run.employee
        recipients = _addresses(employee, ["personal", "work"])
        if recipients:
            lifecycle_email_send(
                template="hardware_return_reminder",
                employee=employee,
                to=recipients,
                context={
                    "returns": open_returns,
                    "overdue": [r for r in open_returns if r.due_date < now.date()],
                    "return_url": return_link_url(employee),
                },
            )
            sent = True
        with transaction.atomic():
            for item in due_now:
                HardwareReturn.objects.filter(pk=item.pk).update(
                    reminders_sent=F("reminders_sent") + 1, last_reminded_at=now
                )
    return {"open": len(open_returns), "reminded": [r.pk for r in due_now], "sent": sent}


def retention_purge_date(last_day: datetime.date) -> datetime.date:
    """The day a leaver's personal data is purged: the first day after `last_day` + `RETENTION_DAYS`."""
    return last_day + datetime.timedelta(days=lifecycle_setting("RETENTION_DAYS") + 1)


def retention_purge_record(*, run: ChecklistRun) -> dict:
    """Record on the leave run when the daily retention purge will anonymise the person.

    The purge itself is not part of the run (`retention_purge_due` does it), so the run closes
    once access, approvals and hardware are dealt with. Idempotent: writes only when the date
    is new (e.g. the last day was changed).
    """
    due = retention_purge_date(run.event_date).isoformat()
    with transaction.atomic():
        locked = ChecklistRun.objects.select_for_update().get(pk=run.pk)
        if locked.details.get("purge_due") != due:
            locked.details = {**locked.details, "purge_due": due}
            set_history_user(locked, None)
            locked.save(update_fields=["details"])
            run.details = locked.details
    return {
        "purge_due": due,
        "retention_days": lifecycle_setting("RETENTION_DAYS"),
        "note": "Anonymised on that day by the daily retention purge, outside this checklist.",
    }


PURGE_BATCH = 100


def retention_purge_due(
    *, now: datetime.datetime | None = None, batch_size: int = PURGE_BATCH, max_seconds: float | None = None
) -> dict[str, int]:
    """Anonymise every terminated employee whose last day + `RETENTION_DAYS` has passed. Runs daily.

    Takes them `batch_size` at a time, oldest last day first, each in its own transaction through
    `retention_purge` (acting user: none, i.e. the system; one PURGE audit event each). Stops
    after `max_seconds` (default: half the queue's task timeout; at least one batch is done) and
    leaves the rest to the next run. Idempotent and safe to run concurrently: a person already
    anonymised is skipped, and the employee row lock in `employee_anonymise` makes a concurrent
    purge of the same person a no-op. One failure is logged and counted; the others still go ahead.
    """
    now = now or timezone.now()
    if max_seconds is None:
        max_seconds = settings.Q_CLUSTER.get("timeout", 60) / 2
    deadline = time.monotonic() + max_seconds
    # Due: the purge date (last day + RETENTION_DAYS + 1) is today or earlier.
    last_day_before = timezone.localdate(now) - datetime.timedelta(days=lifecycle_setting("RETENTION_DAYS"))
    due = Employee.objects.filter(
        status=EmployeeStatus.TERMINATED, anonymised_at__isnull=True, end_date__lt=last_day_before
    ).order_by("end_date", "pk")
    counts = {"purged": 0, "already": 0, "errors": 0, "left": 0}
    failed: set[int] = set()
    while True:
        batch = list(due.exclude(pk__in=failed).values_list("pk", flat=True)[:batch_size])
        if not batch:
            break
        for employee in Employee.objects.filter(pk__in=batch).order_by("end_date", "pk"):
            try:
                outcome = retention_purge(employee=employee, acting_user=None)
            except Exception:  # noqa: BLE001 - one bad row must not stop the purge of the others
                logger.exception("Retention purge of employee %s failed", employee.pk)
                failed.add(employee.pk)
                counts["errors"] += 1
                continue
            counts["already" if outcome["already"] else "purged"] += 1
        if time.monotonic() > deadline:
            counts["left"] = due.exclude(pk__in=failed).count()
            break
    return counts


@transaction.atomic
def retention_purge(*, employee: Employee, acting_user) -> dict:
    """Anonymise a terminated employee's personal data after the retention period.

    The employee row and its history rows (`accounts.services.employee_anonymise`), then copies
    of their name and emails in their runs' task texts (and those tasks' history) and in the
    audit log's target snapshots. Records stay; only personal data goes. Idempotent.
    """
    outcome = account_services.employee_anonymise(employee=employee, acting_user=acting_user)
    if outcome["already"]:
        return {"already": True}
    replaced = outcome["replaced"]
    fresh = Employee.objects.get(pk=employee.pk)
    new_values = account_services.employee_anonymised_values(fresh)
    pairs = [(replaced["full_name"], fresh.full_name)]
    first_last = f"{replaced['first_name']} {replaced['last_name']}"
    if first_last != replaced["full_name"]:
        pairs.append((first_last, fresh.full_name))
    pairs += [(replaced[k], new_values[k] or "(removed)") for k in ("work_email", "personal_email") if replaced[k]]
    run_ids = list(ChecklistRun.objects.filter(employee=fresh).values_list("pk", flat=True))
    task_history = Task.history.model
    text_rows = 0
    for model in (Task, task_history):
        rows = model.objects.filter(run_id__in=run_ids)
        for old, new in pairs:
            text_rows += rows.filter(
                Q(title__contains=old) | Q(instructions__contains=old) | Q(note__contains=old)
            ).update(
                title=Replace(F("title"), Value(old), Value(new)),
                instructions=Replace(F("instructions"), Value(old), Value(new)),
                note=Replace(F("note"), Value(old), Value(new)),
            )
    targets = (
        Q(target_type=Employee._meta.label, target_id=str(fresh.pk))
        | Q(
            target_type=Entitlement._meta.label,
            target_id__in=[str(pk) for pk in fresh.entitlements.values_list("pk", flat=True)],
        )
        | Q(target_type=ChecklistRun._meta.label, target_id__in=[str(pk) for pk in run_ids])
        | Q(
            target_type=HardwareReturn._meta.label,
            target_id__in=[str(pk) for pk in fresh.hardware_returns.values_list("pk", flat=True)],
        )
    )
    # The audit log is append-only for everyone else; a retention purge rewrites only the
    # person's name in the snapshots (`AuditEvent._base_manager`, as portal.models documents).
    audit_rows = 0
    for old, new in pairs:
        audit_rows += (
            AuditEvent._base_manager.filter(targets, target_repr__contains=old)
            .exclude(action=AuditEvent.Action.PURGE)
            .update(target_repr=Replace(F("target_repr"), Value(old), Value(new)))
        )
    return {"already": False, "history_rows": outcome["history_rows"], "task_rows": text_rows, "audit_rows": audit_rows}


# --- Emails -----------------------------------------------------------------------------------


def _addresses(employee: Employee, kinds: list[str]) -> list[str]:
    found = []
    for kind in kinds:
        address = {
            "personal": employee.personal_email,
            "work": employee.work_email,
            "manager": employee.manager.work_email if employee.manager_id else "",
            "it": settings.IT_TEAM_EMAIL,
        }.get(kind, "")
        if address and address.lower() not in {a.lower() for a in found}:
            found.append(address)
    return found


def email_context(employee: Employee, run: ChecklistRun | None = None) -> dict:
    """What the lifecycle emails are personalised with: the person, their role and department, their
    birthright applications (with knowledge-base links), their kit and their onboarding tasks."""
    employee = Employee.objects.select_related("role", "department", "location", "manager").get(pk=employee.pk)
    applications = (
        [ra.application for ra in employee.role.birthrights.select_related("application").order_by("application__name")]
        if employee.role_id
        else []
    )
    kit = list(HardwareAsset.objects.filter(Q(reserved_for=employee) | held_by(employee)).select_related("model"))
    tasks = list(run.tasks.filter(parent__isnull=True).order_by("due_at", "pk")) if run else []
    base = settings.PORTAL_BASE_URL.rstrip("/")
    return {
        "employee": employee,
        "first_name": employee.preferred_name or employee.first_name,
        "role": employee.role,
        "department": employee.department,
        "location": employee.location,
        "manager": employee.manager,
        "applications": applications,
        "kit": kit,
        "employee_tasks": [t for t in tasks if t.assignee_type == Assignee.EMPLOYEE],
        "manager_tasks": [t for t in tasks if t.assignee_type == Assignee.MANAGER],
        "portal_url": f"{base}/",
        "it_email": settings.IT_TEAM_EMAIL,
        "run": run,
    }


def lifecycle_email_send(
    *, template: str, employee: Employee, to: list[str], run: ChecklistRun | None = None, context: dict | None = None
) -> EmailMessage:
    """Render `templates/emails/<template>.txt` (first line: the subject) and send it.

    Replies go to the IT team.
    """
    return email_send(template=template, to=to, context={**email_context(employee, run), **(context or {})})


# Helpers the admin and the actions share.


def open_leave_run(employee: Employee) -> ChecklistRun | None:
    return ChecklistRun.objects.filter(employee=employee, kind=ChecklistKind.LEAVE, status=RunStatus.RUNNING).first()
