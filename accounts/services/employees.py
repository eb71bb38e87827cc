"""The write path of employee records: create, change, status, login, delete and anonymise.

Each service locks the employee row, validates, saves with a history row naming the acting user
and writes its audit event, in one transaction. The lifecycle flows (join, move, leave, purge)
call these for the person; their access is `entitlements` and `provisioning`.
"""

from collections import Counter

from django.core.exceptions import ValidationError
from django.db import router, transaction
from django.db.models.deletion import Collector, ProtectedError, RestrictedError
from django.utils import timezone

from accounts.models import Employee, EmployeeStatus
from portal.audit import audit_record
from portal.history import set_history_user
from portal.models import AuditEvent


@transaction.atomic
def employee_create(*, employee: Employee, acting_user, via: str, unique_checked: bool = False) -> Employee:
    """Insert `employee`, an unsaved instance with its fields set: validated, with history and an audit event.

    Takes the instance rather than the fields so that the callers that build one anyway call it
    as they are: `ModelAdmin.save_model(request, obj, form, change)` passes `obj`, the HR import
    the row it filled. `full_clean()` runs first (names, unique employee number and work email,
    choices, dates), so bad input raises `ValidationError` and writes nothing. The history row
    names `acting_user`; the "employee created" audit event says `via` which path created it
    ("admin", "import", ...). Returns the saved employee.

    `unique_checked`: the caller has just checked that the work email and the employee number are
    free (SCIM does, case-insensitively, in one query) and sets no end date (so no check constraint
    can fail on a new person): `full_clean` then leaves out its uniqueness and constraint checks,
    seven queries the caller has made redundant. The database still enforces both.
    """
    if unique_checked and employee.end_date is not None:
        raise ValueError("unique_checked is for a new person without an end date; validate this one fully.")
    employee.full_clean(validate_unique=not unique_checked, validate_constraints=not unique_checked)
    set_history_user(employee, acting_user)
    employee.save(force_insert=True)
    audit_record(
        action=AuditEvent.Action.EMPLOYEE_CREATED, target=employee, acting_user=acting_user, detail={"via": via}
    )
    return employee


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
    locked.full_clean(exclude=_unchanged(changed))
    set_history_user(locked, acting_user)
    locked.save(update_fields=[*changed, "updated_at"])
    return locked


def _unchanged(changed: list[str]) -> list[str]:
    """The fields `full_clean` may leave out after a change of `changed`: those neither changed nor checked
    together with a changed one by a check constraint (a new last day is checked against the start date).
    Their values were valid before and are as they were: checking them again (the unique work email and
    employee number, the department's existence ...) would only cost queries."""
    checked = set(changed)
    for constraint in Employee._meta.constraints:
        condition = getattr(constraint, "condition", None)
        if condition is not None:
            fields = {"id" if name == "pk" else name for name in condition.referenced_base_fields}
            if fields & checked:
                checked |= fields
    return [field.name for field in Employee._meta.fields if field.name not in checked]


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
    # The addresses an identity provider sent (SCIM `emails`) may hold ones Portal knows by no other field.
    values = {**values, "scim_emails": []}
    locked.scim_emails = []
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
