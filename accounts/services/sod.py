"""Separation of duties: which rules a person's access breaks, now or after a change, and the
exceptions that allow it for a time.

`sod_conflicts` is the one place the conflict is computed. The request form, the access request's
approval chain, the mover preview, the engine's grant, the access review pages and the violations
report all call it, each with the change it is about to make. It reads the active rules, the
holdings they could match, the people's roles and the exceptions in force: four queries whatever
the number of people, rules or entitlements (one when no rule is active).
"""

import datetime
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import (
    AccessRequest,
    Employee,
    EmployeeStatus,
    Entitlement,
    EntitlementStatus,
    SoDEnforcement,
    SoDException,
    SoDRule,
)
from portal.audit import audit_record
from portal.history import set_history_user
from portal.models import AuditEvent

# What counts as held: access given or being given. Access being revoked is on its way out.
HELD_STATUSES = (EntitlementStatus.PENDING, EntitlementStatus.ACTIVE)
# An exception made by a control owner's approval of a request with no end date lasts this long.
APPROVAL_EXCEPTION_DAYS = 365


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = _Unchanged()


@dataclass(frozen=True)
class SoDScenario:
    """One person's access as a change would leave it: `add` (application id, level) pairs held on top
    (a pair for an application already held replaces its level), `remove` application ids no longer
    held, and `role_id` the role they would have (UNCHANGED: their current one)."""

    employee_id: int
    add: tuple[tuple[int, str], ...] = ()
    remove: frozenset[int] = frozenset()
    role_id: object = UNCHANGED


@dataclass(frozen=True)
class SoDConflict:
    """One rule one person breaks (or would break) and whether an exception in force allows it.

    `new`: the change in the scenario creates it (the person does not break the rule today)."""

    rule: SoDRule
    employee_id: int
    new: bool
    exception: SoDException | None = None

    @property
    def excepted(self) -> bool:
        return self.exception is not None

    @property
    def refused(self) -> bool:
        return self.rule.enforcement == SoDEnforcement.REFUSE

    def involves(self, application_id: int, level: str | None = None) -> bool:
        """True when one side of the rule is this application (at this level, or any)."""
        for which in ("first", "second"):
            if getattr(self.rule, f"{which}_application_id") == application_id:
                side_level = getattr(self.rule, f"{which}_level")
                if not side_level or level is None or side_level == level:
                    return True
        return False

    @property
    def sides(self) -> str:
        return f"{self.rule.side_label('first')} with {self.rule.side_label('second')}"

    @property
    def sentence(self) -> str:
        rule = self.rule
        text = f"{rule.side_label('first')} and {rule.side_label('second')} must not be held together ({rule.name}): "
        text += rule.reason.strip()
        if self.excepted:
            text += f" Allowed by an exception until {self.exception.ends_on:%d %b %Y}."
        return text


@dataclass
class _Holding:
    role_id: int | None = None
    access: dict[int, str] = field(default_factory=dict)  # application id → level


def _side_matches(rule: SoDRule, which: str, holding: _Holding) -> bool:
    role_id = getattr(rule, f"{which}_role_id")
    if role_id is not None:
        return holding.role_id == role_id
    level = holding.access.get(getattr(rule, f"{which}_application_id"))
    if level is None:
        return False
    wanted = getattr(rule, f"{which}_level")
    return not wanted or wanted == level


def _breaks(rule: SoDRule, holding: _Holding) -> bool:
    return _side_matches(rule, "first", holding) and _side_matches(rule, "second", holding)


def active_rules() -> list[SoDRule]:
    return list(
        SoDRule.objects.filter(active=True)
        .select_related("first_application", "second_application", "first_role", "second_role", "control_owner")
        .order_by("name", "pk")
    )


def sod_conflicts(
    *,
    scenarios: Mapping[Hashable, SoDScenario] | None = None,
    today: datetime.date | None = None,
    rules: list[SoDRule] | None = None,
) -> dict[Hashable, list[SoDConflict]]:
    """The rules each scenario breaks, keyed like `scenarios`, with the exception in force if any.

    Without `scenarios`, every person as they are today, keyed by employee id (the violations
    report); only people who break a rule appear. A scenario's conflicts include those the person
    breaks already (`new` False). Four queries (one if no rule is active), whatever the sizes.
    """
    today = today or timezone.localdate()
    rules = active_rules() if rules is None else rules
    if not rules:
        return {}
    app_ids = {r.first_application_id for r in rules} | {r.second_application_id for r in rules}
    app_ids.discard(None)
    role_ids = {r.first_role_id for r in rules} | {r.second_role_id for r in rules}
    role_ids.discard(None)
    employee_ids = None if scenarios is None else {s.employee_id for s in scenarios.values()}

    holdings: dict[int, _Holding] = defaultdict(_Holding)
    people = Employee.objects.all()
    people = people.filter(pk__in=employee_ids) if employee_ids is not None else people.filter(role_id__in=role_ids)
    for pk, role_id in people.values_list("pk", "role_id"):
        holdings[pk].role_id = role_id
    entitlements = Entitlement.objects.filter(status__in=HELD_STATUSES, application_id__in=app_ids)
    if employee_ids is not None:
        entitlements = entitlements.filter(employee_id__in=employee_ids)
    for employee_id, application_id, level in entitlements.values_list("employee_id", "application_id", "level"):
        holdings[employee_id].access[application_id] = level
    exceptions = SoDException.objects.filter(
        rule__in=rules, ended_at__isnull=True, starts_on__lte=today, ends_on__gte=today
    ).select_related("approved_by")
    if employee_ids is not None:
        exceptions = exceptions.filter(employee_id__in=employee_ids)
    in_force: dict[tuple[int, int], SoDException] = {}
    for exception in exceptions.order_by("ends_on", "pk"):
        in_force[(exception.employee_id, exception.rule_id)] = exception  # the one lasting longest wins

    everyone = scenarios is None
    if everyone:
        scenarios = {pk: SoDScenario(employee_id=pk) for pk in holdings}
    result: dict[Hashable, list[SoDConflict]] = {}
    for key, scenario in scenarios.items():
        before = holdings[scenario.employee_id]
        after = _Holding(
            role_id=before.role_id if scenario.role_id is UNCHANGED else scenario.role_id,
            access={a: lvl for a, lvl in before.access.items() if a not in scenario.remove},
        )
        for application_id, level in scenario.add:
            after.access[application_id] = level
        found = [
            SoDConflict(
                rule=rule,
                employee_id=scenario.employee_id,
                new=not _breaks(rule, before),
                exception=in_force.get((scenario.employee_id, rule.pk)),
            )
            for rule in rules
            if _breaks(rule, after)
        ]
        if found or not everyone:
            result[key] = found
    return result


def sod_violations() -> list[SoDConflict]:
    """Every conflict people hold today, exceptions in force included (they are shown as such)."""
    found = sod_conflicts()
    return [conflict for conflicts in found.values() for conflict in conflicts]


def sod_conflicts_for_grants(
    *, employee: Employee, pairs: Iterable[tuple[int, str]], today: datetime.date | None = None
) -> dict[tuple[int, str], list[SoDConflict]]:
    """For each (application id, level): the conflicts that holding it on top of what `employee` holds
    would give them, among those that involve that application (conflicts elsewhere are not that
    grant's doing), exceptions in force included. One `sod_conflicts` call for all the pairs."""
    scenarios = {pair: SoDScenario(employee_id=employee.pk, add=(pair,)) for pair in pairs}
    if not scenarios:
        return {}
    found = sod_conflicts(scenarios=scenarios, today=today)
    return {pair: [c for c in found.get(pair, []) if c.involves(*pair)] for pair in scenarios}


def sod_conflicts_for_grant(
    *, employee: Employee, application_id: int, level: str, today: datetime.date | None = None
) -> list[SoDConflict]:
    """`sod_conflicts_for_grants` for one grant."""
    pair = (application_id, level)
    return sod_conflicts_for_grants(employee=employee, pairs=[pair], today=today)[pair]


class SoDConflictError(ValidationError):
    """A grant that would break a rule without an exception: the engine must not retry it blindly."""

    retryable = False


def sod_grant_check(*, entitlement: Entitlement, level: str | None = None, acting_user=None) -> None:
    """Refuse (SoDConflictError) to give `entitlement` (at `level`, default its own) when that breaks a
    rule that no exception in force allows; the refusal is recorded in the audit log. The engine
    calls this before every grant and level change, so a conflict is never created silently."""
    level = level or entitlement.level
    blocking = [
        c
        for c in sod_conflicts_for_grant(
            employee=entitlement.employee, application_id=entitlement.application_id, level=level
        )
        if not c.excepted
    ]
    if not blocking:
        return
    audit_record(
        action=AuditEvent.Action.SOD_GRANT_BLOCKED,
        target=entitlement,
        acting_user=acting_user,
        detail={"level": level, "rules": [c.rule.pk for c in blocking]},
    )
    names = "; ".join(c.sentence for c in blocking)
    raise SoDConflictError(
        f"Not granted: {entitlement.employee.full_name} would hold a separation-of-duties conflict. {names} "
        "Add an exception for this person (Separation of duties exceptions, in the admin) or remove the other "
        "access, then retry this task."
    )


# --- Exceptions ----------------------------------------------------------------------------------


def _validate_exception(exception: SoDException, today: datetime.date) -> None:
    exception.full_clean(exclude=["created_by", "access_request"])
    if exception.ends_on < exception.starts_on:
        raise ValidationError({"ends_on": "The exception's end date is before its start date."})
    if exception.ends_on < today:
        raise ValidationError({"ends_on": f"The end date {exception.ends_on:%d %b %Y} is in the past."})
    if exception.approved_by_id == exception.employee_id:
        raise ValidationError({"approved_by": "Nobody approves an exception for their own access."})
    if exception.approved_by.status == EmployeeStatus.TERMINATED:
        raise ValidationError({"approved_by": f"{exception.approved_by.full_name} has left; choose another approver."})


def sod_exception_validate(*, exception: SoDException, today: datetime.date | None = None) -> None:
    """Everything `sod_exception_grant` refuses, without writing: a bad date range, an end in the past,
    the holder approving it themselves, and a person who does not hold the rule's conflict."""
    today = today or timezone.localdate()
    _validate_exception(exception, today)
    if not exception.rule.active:
        raise ValidationError({"rule": f"The rule {exception.rule} is not active; nothing needs an exception."})
    held = sod_conflicts(scenarios={"now": SoDScenario(employee_id=exception.employee_id)}, today=today)["now"]
    if not any(c.rule.pk == exception.rule_id for c in held) and not _holds_a_side(exception):
        raise ValidationError(
            {
                "employee": f"{exception.employee.full_name} holds neither side of {exception.rule} "
                f"({exception.rule.side_label('first')} with {exception.rule.side_label('second')}); "
                "no exception is needed."
            }
        )


def _holds_a_side(exception: SoDException) -> bool:
    """True when the person holds one side of the rule (so IT can allow the other before granting it by hand)."""
    rule = exception.rule
    employee = Employee.objects.only("pk", "role_id").get(pk=exception.employee_id)
    access = dict(
        Entitlement.objects.filter(
            employee_id=employee.pk, status__in=[EntitlementStatus.PENDING, EntitlementStatus.ACTIVE]
        ).values_list("application_id", "level")
    )
    holding = _Holding(role_id=employee.role_id, access=access)
    return _side_matches(rule, "first", holding) or _side_matches(rule, "second", holding)


def _save_exception(exception: SoDException, acting_user) -> SoDException:
    exception.created_by = acting_user if getattr(acting_user, "pk", None) else None
    exception.reason = exception.reason.strip()
    set_history_user(exception, acting_user)
    exception.save()
    audit_record(
        action=AuditEvent.Action.SOD_EXCEPTION_GRANTED,
        target=exception,
        acting_user=acting_user,
        detail={
            "rule": exception.rule_id,
            "employee": exception.employee_id,
            "starts_on": exception.starts_on,
            "ends_on": exception.ends_on,
            "approved_by": exception.approved_by_id,
            "access_request": exception.access_request_id,
        },
    )
    return exception


@transaction.atomic
def sod_exception_grant(*, exception: SoDException, acting_user) -> SoDException:
    """Record a time-bound exception (unsaved instance in, saved out), with history and an audit event.
    Refused, writing nothing, as `sod_exception_validate` says."""
    if exception.pk is not None:
        raise ValidationError("An exception is granted once; end it and grant a new one to change it.")
    sod_exception_validate(exception=exception)
    return _save_exception(exception, acting_user)


@transaction.atomic
def sod_exception_end(*, exception: SoDException, acting_user) -> SoDException:
    """End an exception now (it no longer allows the conflict); history and an audit event. Idempotent."""
    locked = SoDException.objects.select_for_update(of=("self",)).get(pk=exception.pk)
    if locked.ended_at is not None:
        return locked
    locked.ended_at = timezone.now()
    set_history_user(locked, acting_user)
    locked.save(update_fields=["ended_at"])
    audit_record(
        action=AuditEvent.Action.SOD_EXCEPTION_ENDED,
        target=locked,
        acting_user=acting_user,
        detail={"rule": locked.rule_id, "employee": locked.employee_id},
    )
    return locked


def sod_exceptions_for_approved_request(*, request: AccessRequest, acting_user) -> list[SoDException]:
    """An access request was approved: for each rule it breaks whose control owner approved one of its
    steps, an exception through the request's end date (or `APPROVAL_EXCEPTION_DAYS`). A rule whose
    owner did not approve (added since the request was sent, say) gets none: the grant is then blocked."""
    today = timezone.localdate()
    conflicts = [
        c
        for c in sod_conflicts_for_grant(
            employee=request.employee, application_id=request.application_id, level=request.level, today=today
        )
        if not c.excepted and not c.refused
    ]
    if not conflicts:
        return []
    approvers = set(request.steps.filter(status="approved").values_list("approver_id", flat=True))
    made = []
    for conflict in conflicts:
        if conflict.rule.control_owner_id not in approvers:
            continue
        exception = SoDException(
            rule=conflict.rule,
            employee=request.employee,
            starts_on=today,
            ends_on=request.end_date or today + datetime.timedelta(days=APPROVAL_EXCEPTION_DAYS),
            reason=f"Approved by the control owner with access request #{request.pk}: {request.justification}"[:2000],
            approved_by=conflict.rule.control_owner,
            access_request=request,
        )
        made.append(_save_exception(exception, acting_user))
    return made


# --- Rules ---------------------------------------------------------------------------------------


@transaction.atomic
def sod_rule_save(*, rule: SoDRule, acting_user) -> SoDRule:
    """Create or change a rule after `full_clean` (a rule with the same thing on both sides, or a side
    that is neither or both an application and a role, is refused), with history and an audit event."""
    rule.name = (rule.name or "").strip()
    rule.reason = (rule.reason or "").strip()
    rule.full_clean()
    created = rule.pk is None
    set_history_user(rule, acting_user)
    rule.save()
    audit_record(
        action=AuditEvent.Action.SOD_RULE_SAVED,
        target=rule,
        acting_user=acting_user,
        detail={
            "created": created,
            "first": rule.side_label("first"),
            "second": rule.side_label("second"),
            "enforcement": rule.enforcement,
            "control_owner": rule.control_owner_id,
            "active": rule.active,
        },
    )
    return rule


def sod_conflicts_for_items(items: Iterable) -> dict[int, list[SoDConflict]]:
    """For access review items (anything with `pk`, `employee_id`, `application_id`, `level`): the rules
    their holder breaks today that involve the item's application and level, exceptions shown. One
    `sod_conflicts` call for all the items, so a page of items costs the same whatever its size."""
    items = list(items)
    scenarios = {pk: SoDScenario(employee_id=pk) for pk in {item.employee_id for item in items}}
    if not scenarios:
        return {}
    found = sod_conflicts(scenarios=scenarios)
    return {
        item.pk: [c for c in found.get(item.employee_id, []) if c.involves(item.application_id, item.level)]
        for item in items
    }
