"""Write path for people and access. Views, admin, imports and tasks call these."""

from collections import Counter

from django.core.exceptions import ValidationError
from django.db import IntegrityError, router, transaction
from django.db.models.deletion import Collector, ProtectedError, RestrictedError
from django.utils import timezone

from accounts.models import (
    LIVE_ENTITLEMENT_STATUSES,
    Application,
    Employee,
    EmployeeStatus,
    Entitlement,
    EntitlementSource,
    EntitlementStatus,
)
from portal.audit import audit_record
from portal.history import set_history_user
from portal.models import AuditEvent


def employee_deletion_blockers(*, employee: Employee) -> list[str]:
    """Reasons an employee record may not be deleted (empty when it may).

    Asks Django's deletion collector which protected rows (hardware, entitlements,
    check-outs, requests ...) still point at the employee, so any app's protected
    relation counts without this module importing that app.
    """
    collector = Collector(using=router.db_for_write(Employee))
    try:
        collector.collect([employee])
    except (ProtectedError, RestrictedError) as exc:
        blocking = exc.protected_objects if isinstance(exc, ProtectedError) else exc.restricted_objects
        counts = Counter(obj._meta for obj in blocking)
        return sorted(f"{n} {opts.verbose_name if n == 1 else opts.verbose_name_plural}" for opts, n in counts.items())
    return []


@transaction.atomic
def employee_delete(*, employee: Employee, acting_user) -> None:
    """Delete an employee who never held access or hardware (e.g. a duplicate entered by mistake).

    Anyone who holds or held hardware or access is refused with the reason: terminate them instead,
    so the audit trail of who had what stays whole. The row is locked first, so a check-out or grant
    committed meanwhile is seen (and blocks), and one racing with the delete fails instead of
    pointing at a deleted person.
    """
    try:
        locked = Employee.objects.select_for_update().get(pk=employee.pk)
    except Employee.DoesNotExist:
        raise ValidationError(f"{employee.full_name} no longer exists; nothing to delete.")
    reasons = employee_deletion_blockers(employee=locked)
    if reasons:
        raise ValidationError(
            f"{locked.full_name} cannot be deleted: these records still refer to them: "
            f"{', '.join(reasons)}. Set their status to terminated instead, so the audit trail stays whole."
        )
    audit_record(action=AuditEvent.Action.DELETE, target=locked, acting_user=acting_user)
    set_history_user(locked, acting_user)
    locked.delete()


def _live_entitlement(*, employee: Employee, application: Application) -> Entitlement | None:
    return (
        Entitlement.objects.select_for_update()
        .filter(employee=employee, application=application, status__in=LIVE_ENTITLEMENT_STATUSES)
        .first()
    )


def _existing_grant_result(existing: Entitlement, *, employee: Employee, application: Application, level: str):
    """What a repeated grant answers when a live entitlement already exists: the same row, or why not."""
    if existing.status == EntitlementStatus.REVOKING:
        raise ValidationError(
            f"{employee.full_name}'s access to {application.name} is being revoked; "
            "grant it again once the revocation has finished."
        )
    if existing.level != level:
        raise ValidationError(
            f"{employee.full_name} already holds {application.name} at level {existing.level!r}; "
            "change the level instead of granting again."
        )
    return existing


@transaction.atomic
def entitlement_grant(
    *,
    employee: Employee,
    application: Application,
    level: str,
    acting_user,
    source: str = EntitlementSource.MANUAL,
    expires_at=None,
) -> Entitlement:
    """Record that `employee` holds `application` at `level` (active now).

    Idempotent: if the employee already holds a live (pending or active) entitlement to the
    application at the same level it is returned unchanged, with no new history or audit row;
    at another level, or while it is being revoked, a clear error. A terminated employee is refused.

    The employee row is locked first, so concurrent grants for one person run one after the
    other and a termination committed meanwhile is seen. Should a writer that bypasses this
    service insert the same live entitlement concurrently, the unique constraint's error is
    turned into the same idempotent answer.
    """
    try:
        locked = Employee.objects.select_for_update(no_key=True).only("pk", "status").get(pk=employee.pk)
    except Employee.DoesNotExist:
        raise ValidationError(f"{employee.full_name} no longer exists.")
    if locked.status == EmployeeStatus.TERMINATED:
        raise ValidationError(f"{employee.full_name} is terminated and cannot be granted access.")
    existing = _live_entitlement(employee=employee, application=application)
    if existing is not None:
        return _existing_grant_result(existing, employee=employee, application=application, level=level)
    entitlement = Entitlement(
        employee=employee,
        application=application,
        level=level,
        source=source,
        status=EntitlementStatus.ACTIVE,
        granted_at=timezone.now(),
        expires_at=expires_at,
    )
    entitlement.full_clean()
    set_history_user(entitlement, acting_user)
    try:
        with transaction.atomic():
            entitlement.save()
    except IntegrityError:
        existing = _live_entitlement(employee=employee, application=application)
        if existing is None:
            raise
        return _existing_grant_result(existing, employee=employee, application=application, level=level)
    audit_record(
        action=AuditEvent.Action.GRANT,
        target=entitlement,
        acting_user=acting_user,
        detail={"employee": employee.pk, "application": application.pk, "level": level, "source": source},
    )
    return entitlement


@transaction.atomic
def entitlement_revoke(*, entitlement: Entitlement, acting_user, reason: str = "") -> Entitlement:
    """Mark an entitlement revoked now. Idempotent: a revoked entitlement is returned unchanged."""
    entitlement = Entitlement.objects.select_for_update().get(pk=entitlement.pk)
    if entitlement.status == EntitlementStatus.REVOKED:
        return entitlement
    entitlement.status = EntitlementStatus.REVOKED
    entitlement.revoked_at = timezone.now()
    set_history_user(entitlement, acting_user)
    entitlement.save(update_fields=["status", "revoked_at"])
    audit_record(
        action=AuditEvent.Action.REVOKE,
        target=entitlement,
        acting_user=acting_user,
        detail={"employee": entitlement.employee_id, "application": entitlement.application_id, "reason": reason},
    )
    return entitlement


# --- Lifecycle: changes the join, move and leave flows make to people and their access ---------

EMPLOYEE_ORG_FIELDS = ("role", "department", "manager")


@transaction.atomic
def employee_update(*, employee: Employee, changes: dict, acting_user) -> Employee:
    """Change some fields of an employee (e.g. a mover's role, department or manager), validated, with history.

    Only `EMPLOYEE_ORG_FIELDS`, `end_date` and `title` may change here; the status changes through
    `employee_set_status`. Returns the saved row; nothing is written when nothing changes.
    """
    allowed = {*EMPLOYEE_ORG_FIELDS, "end_date", "title"}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise ValidationError(f"These fields cannot be changed here: {', '.join(unknown)}.")
    locked = Employee.objects.select_for_update().get(pk=employee.pk)
    changed = [name for name, value in changes.items() if getattr(locked, name) != value]
    if not changed:
        return locked
    for name in changed:
        setattr(locked, name, changes[name])
    locked.full_clean()
    set_history_user(locked, acting_user)
    locked.save(update_fields=[*changed, "updated_at"])
    return locked


@transaction.atomic
def employee_set_status(*, employee: Employee, status: str, acting_user, reason: str = "") -> Employee:
    """Set an employee's status (pre-hire → active on day one, → terminated at a leaver's cut-off).

    Idempotent: the same status again writes nothing. A terminated employee stays terminated.
    """
    if status not in EmployeeStatus.values:
        raise ValidationError(f"Unknown employee status {status!r}.")
    locked = Employee.objects.select_for_update().get(pk=employee.pk)
    if locked.status == status:
        return locked
    if locked.status == EmployeeStatus.TERMINATED:
        raise ValidationError(f"{locked.full_name} is terminated; their status cannot change to {status}.")
    previous = locked.status
    locked.status = status
    set_history_user(locked, acting_user)
    locked.save(update_fields=["status", "updated_at"])
    audit_record(
        action=AuditEvent.Action.STATUS_CHANGED,
        target=locked,
        acting_user=acting_user,
        detail={"from": previous, "to": status, "reason": reason},
    )
    return locked


def _sessions_of(user) -> list:
    """The unexpired database sessions that belong to `user` (empty for a non-database session engine)."""
    from importlib import import_module

    from django.conf import settings

    store = import_module(settings.SESSION_ENGINE).SessionStore
    if getattr(user, "last_login", True) is None or not hasattr(store, "get_model_class"):
        # Never logged in: no session to find. Each session must be decoded to know its user, so
        # the scan is skipped when it cannot find anything.
        return []
    model = store.get_model_class()
    owned = []
    for session in model.objects.filter(expire_date__gt=timezone.now()).iterator(chunk_size=2000):
        try:
            data = store().decode(session.session_data)
        except Exception:  # noqa: BLE001, S112 - a corrupt session belongs to nobody
            continue
        if str(data.get("_auth_user_id")) == str(user.pk):
            owned.append(session)
    return owned


@transaction.atomic
def employee_disable_login(*, employee: Employee, acting_user) -> dict:
    """Cut a person's login now: their Django user becomes inactive and every session of theirs is deleted.

    The first step of a leaver's cut-off (safest first). Idempotent: a second call finds nothing to
    do and writes no audit event. An employee without a login has nothing to disable.
    """
    locked = Employee.objects.select_for_update(of=("self",)).select_related("user").get(pk=employee.pk)
    user = locked.user
    if user is None:
        return {"user": None, "deactivated": False, "sessions_ended": 0}
    deactivated = False
    if user.is_active:
        user.is_active = False
        user.save(update_fields=["is_active"])
        deactivated = True
    sessions = _sessions_of(user)
    for session in sessions:
        session.delete()
    if deactivated or sessions:
        audit_record(
            action=AuditEvent.Action.LOGIN_DISABLED,
            target=locked,
            acting_user=acting_user,
            detail={"user": user.pk, "sessions_ended": len(sessions)},
        )
    return {"user": user.pk, "deactivated": deactivated, "sessions_ended": len(sessions)}


@transaction.atomic
def approvals_hand_over(*, employee: Employee, acting_user) -> dict:
    """Give a leaver's open approval steps and owned applications to their manager.

    Pending and waiting steps where the leaver is the approver go to the manager (to the manager's
    manager for a request the manager made for themselves); the object permission to decide moves
    with them. Applications the leaver owns get the manager as owner. Whatever has nobody to go to
    is listed under `unassigned` for IT. Idempotent: what was handed over is no longer the leaver's.
    """
    from guardian.shortcuts import assign_perm, remove_perm

    from accounts.models import ApprovalStep, ApprovalStepStatus

    locked = (
        Employee.objects.select_for_update(of=("self",)).select_related("manager__manager", "user").get(pk=employee.pk)
    )
    manager = locked.manager
    handed, unassigned = [], []
    steps = (
        ApprovalStep.objects.select_for_update(of=("self",))
        .select_related("request__employee", "request__application")
        .filter(approver=locked, status__in=[ApprovalStepStatus.PENDING, ApprovalStepStatus.WAITING])
        .order_by("pk")
    )
    for step in steps:
        target = manager
        if target is not None and step.request.employee_id == target.pk:
            target = target.manager  # nobody approves their own request
        if target is None or target.pk == locked.pk:
            unassigned.append(f"approval step {step.order} of request #{step.request_id} ({step.request.application})")
            continue
        step.approver = target
        set_history_user(step, acting_user)
        step.save(update_fields=["approver"])
        if locked.user_id:
            remove_perm("accounts.decide_approvalstep", locked.user, step)
        if target.user_id:
            assign_perm("accounts.decide_approvalstep", target.user, step)
        audit_record(
            action=AuditEvent.Action.APPROVAL_HANDED_OVER,
            target=step,
            acting_user=acting_user,
            detail={"from": locked.pk, "to": target.pk, "request": step.request_id},
        )
        handed.append(step.pk)
    applications = []
    for application in Application.objects.select_for_update().filter(owner=locked).order_by("name"):
        if manager is None:
            unassigned.append(f"ownership of {application.name}")
            continue
        application.owner = manager
        set_history_user(application, acting_user)
        application.save(update_fields=["owner"])
        audit_record(
            action=AuditEvent.Action.OWNER_HANDED_OVER,
            target=application,
            acting_user=acting_user,
            detail={"from": locked.pk, "to": manager.pk},
        )
        applications.append(application.pk)
    return {
        "manager": manager.pk if manager else None,
        "approval_steps": handed,
        "applications": applications,
        "unassigned": unassigned,
    }


@transaction.atomic
def entitlement_confirm_level_changed(*, entitlement: Entitlement, level: str, acting_user) -> Entitlement:
    """A person changed the access level by hand in the target system: record it here. Idempotent."""
    entitlement = (
        Entitlement.objects.select_for_update(of=("self",)).select_related("application").get(pk=entitlement.pk)
    )
    if entitlement.level == level:
        return entitlement
    if level not in entitlement.application.access_levels:
        raise ValidationError(f"{entitlement.application} has no level {level!r}.")
    if entitlement.status != EntitlementStatus.ACTIVE:
        raise ValidationError(f"{entitlement} is not active; its level cannot be changed.")
    previous = entitlement.level
    entitlement.level = level
    set_history_user(entitlement, acting_user)
    entitlement.save(update_fields=["level"])
    audit_record(
        action=AuditEvent.Action.LEVEL_CHANGED,
        target=entitlement,
        acting_user=acting_user,
        detail={"from": previous, "to": level, "via": "manual"},
    )
    return entitlement


ANONYMISED_EMAIL_DOMAIN = "anonymised.invalid"
PERSONAL_FIELDS = (
    "first_name",
    "last_name",
    "preferred_name",
    "work_email",
    "personal_email",
    "personal_phone",
    "home_address",
)


def employee_anonymised_values(employee: Employee) -> dict:
    """What a purged employee's personal fields become: a placeholder name and a unique placeholder email."""
    number = employee.employee_number
    return {
        "first_name": "Former employee",
        "last_name": number,
        "preferred_name": "",
        "work_email": f"former-{number.lower()}-{employee.pk}@{ANONYMISED_EMAIL_DOMAIN}",
        "personal_email": "",
        "personal_phone": "",
        "home_address": "",
    }


@transaction.atomic
def employee_anonymise(*, employee: Employee, acting_user) -> dict:
    """Replace a terminated employee's personal data by placeholders, in the row and every history row.

    Names become "Former employee <number>", the work email a unique placeholder, personal email,
    phone and address blank; the linked login loses its name and email. The employee number, role,
    department and dates stay (records are kept, never deleted). Sets `anonymised_at`; a second
    call does nothing. Refused for anyone not terminated. Returns the values replaced (for callers
    that scrub copies kept elsewhere) and counts.
    """
    locked = Employee.objects.select_for_update(of=("self",)).select_related("user").get(pk=employee.pk)
    if locked.anonymised_at is not None:
        return {"already": True, "replaced": {}, "history_rows": 0}
    if locked.status != EmployeeStatus.TERMINATED:
        raise ValidationError(f"{locked.full_name} is not terminated; their personal data is not purged.")
    replaced = {name: getattr(locked, name) for name in PERSONAL_FIELDS}
    replaced["full_name"] = locked.full_name
    values = employee_anonymised_values(locked)
    for name, value in values.items():
        setattr(locked, name, value)
    locked.anonymised_at = timezone.now()
    set_history_user(locked, acting_user)
    locked._change_reason = "Retention purge"
    locked.save(update_fields=[*values, "anonymised_at", "updated_at"])
    history_rows = Employee.history.model.objects.filter(id=locked.pk).update(**values)
    if locked.user is not None:
        user = locked.user
        user.first_name = user.last_name = user.email = ""
        user.is_active = False
        username = f"former-{locked.employee_number.lower()}"
        if not type(user).objects.filter(username=username).exclude(pk=user.pk).exists():
            user.username = username
        user.save(update_fields=["first_name", "last_name", "email", "is_active", "username"])
    audit_record(
        action=AuditEvent.Action.PURGE,
        target=locked,
        acting_user=acting_user,
        detail={"employee": locked.pk, "history_rows": history_rows},
    )
    return {"already": False, "replaced": replaced, "history_rows": history_rows}
