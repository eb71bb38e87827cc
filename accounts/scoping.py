"""Scoped administration: a helpdesk login limited to some departments and locations (`AdminScope`).

Owns the one helper every admin page, action, import, export and the API read through,
`restrict(queryset, user)` (NetBox's `restrict()`), and the registry that says, per model, how a row
reaches a person or a place (`register_scope`). accounts registers its own models and portal's;
assets, offboarding and api register theirs in their `ready()`. A model nobody registered is hidden
from a scoped user (fail closed); `test_scoping.py` checks that every admin model is registered.
"""

from dataclasses import dataclass

from django.db.models import Model, Q, QuerySet

from accounts.models import AdminScope, Department, Location


@dataclass(frozen=True)
class ScopeRule:
    """How a model's rows fall inside a scope. A row is inside when any of its paths leads there:

    - `employees`: paths to an `Employee` ("" is the row itself), inside when that person's department or
      location is in the scope;
    - `locations`: paths to a `Location`, inside when it is one of the scope's locations;
    - `own`: a path to a user, inside when it is the signed-in user (their own tokens, imports, scope);
    - `unrestricted`: the catalog and settings (applications, roles, templates ...), every row inside;
    - none of these (`hidden`): nothing is inside (records about anyone, such as the audit log).
    """

    employees: tuple[str, ...] = ()
    locations: tuple[str, ...] = ()
    own: str | None = None
    unrestricted: bool = False
    reason: str = ""

    @property
    def hidden(self) -> bool:
        return not (self.employees or self.locations or self.own or self.unrestricted)


_RULES: dict[type[Model], ScopeRule] = {}


def register_scope(
    model: type[Model],
    *,
    employees: tuple[str, ...] | str = (),
    locations: tuple[str, ...] | str = (),
    own: str | None = None,
    unrestricted: bool = False,
    hidden: bool = False,
    reason: str = "",
) -> None:
    """Declare how `model`'s rows fall inside a scope (see `ScopeRule`); `hidden=True` says nothing is.

    Unrestricted and hidden models say why in `reason` (the README lists them). Registering a model
    twice with another rule is refused: one model, one rule.
    """
    employees = (employees,) if isinstance(employees, str) else tuple(employees)
    locations = (locations,) if isinstance(locations, str) else tuple(locations)
    rule = ScopeRule(employees=employees, locations=locations, own=own, unrestricted=unrestricted, reason=reason)
    kinds = [bool(employees or locations), bool(own), unrestricted, hidden]
    if sum(kinds) != 1:
        raise ValueError(f"{model._meta.label}: give paths, `own`, `unrestricted` or `hidden`, exactly one kind.")
    if (unrestricted or hidden) and not reason:
        raise ValueError(f"{model._meta.label}: say why it is {'unrestricted' if unrestricted else 'hidden'}.")
    if _RULES.get(model, rule) != rule:
        raise ValueError(f"{model._meta.label} already has a scope rule.")
    _RULES[model] = rule


def scope_rule(model: type[Model]) -> ScopeRule | None:
    """The rule registered for `model`, the concrete model behind a proxy, or the model whose history it
    is (a simple-history version's foreign keys point at today's rows: a past version of an entitlement
    is inside when its holder is inside now); None when none was."""
    return (
        _RULES.get(model) or _RULES.get(model._meta.concrete_model) or _RULES.get(getattr(model, "instance_type", None))
    )


def registered_rules() -> dict[type[Model], ScopeRule]:
    return dict(_RULES)


@dataclass(frozen=True)
class Scope:
    """One user's scope, as ids: what `restrict` filters on."""

    department_ids: frozenset[int]
    location_ids: frozenset[int]


_CACHE = "_portal_admin_scope"


def scope_for(user) -> Scope | None:
    """`user`'s scope, or None when they are not scoped (no `AdminScope` row, or not signed in).

    One query the first time for a user object (a request's user), then cached on it: every page
    and API call reads its scope once, whatever it shows.
    """
    if user is None or not getattr(user, "is_authenticated", False) or user.pk is None:
        return None
    if _CACHE not in user.__dict__:
        rows = list(AdminScope.objects.filter(user_id=user.pk).values_list("departments", "locations"))
        user.__dict__[_CACHE] = (
            Scope(
                department_ids=frozenset(d for d, _ in rows if d is not None),
                location_ids=frozenset(loc for _, loc in rows if loc is not None),
            )
            if rows
            else None
        )
    return user.__dict__[_CACHE]


def scope_forget(user) -> None:
    """Drop the scope cached on this user object (after their scope was saved or removed)."""
    user.__dict__.pop(_CACHE, None)


def is_scoped(user) -> bool:
    return scope_for(user) is not None


def restrict(queryset: QuerySet, user) -> QuerySet:
    """`queryset` narrowed to the rows inside `user`'s scope: the one helper for every scoped read.

    Unscoped users (no `AdminScope`) get `queryset` unchanged, without a filter. For a scoped user the
    model's rule decides (`register_scope`): one WHERE on the rows' own foreign keys (ids, no subquery,
    no extra query but `scope_for`'s first); an unregistered or hidden model, or a scope naming
    neither a department nor a location, gives no rows.
    """
    scope = scope_for(user)
    if scope is None:
        return queryset
    rule = scope_rule(queryset.model)
    if rule is None or rule.hidden:
        return queryset.none()
    if rule.unrestricted:
        return queryset
    if rule.own:
        return queryset.filter(**{rule.own: user.pk})
    condition = Q()
    departments, locations = sorted(scope.department_ids), sorted(scope.location_ids)
    for path in rule.employees:
        prefix = f"{path}__" if path else ""
        if departments:
            condition |= Q(**{f"{prefix}department__in": departments})
        if locations:
            condition |= Q(**{f"{prefix}location__in": locations})
    for path in rule.locations:
        if locations:
            condition |= Q(**{f"{path}__in": locations})
    if not condition:
        return queryset.none()
    return queryset.filter(condition)


def _follow(obj, path: str):
    for name in path.split("__") if path else ():
        obj = getattr(obj, name, None)  # a missing reverse one-to-one raises an AttributeError subclass
        if obj is None:
            return None
    return obj


def _follow_id(obj, path: str):
    head, _, last = path.rpartition("__")
    holder = _follow(obj, head)
    return None if holder is None else getattr(holder, f"{last}_id", None)


def allows(obj: Model, user) -> bool:
    """Whether `obj` (saved or not: a form's instance before it is saved) is inside `user`'s scope.

    The same rule as `restrict`, read from the object's attributes; `test_scoping.py` checks that the
    two agree on a row of every registered model.
    """
    scope = scope_for(user)
    if scope is None:
        return True
    rule = scope_rule(type(obj))
    if rule is None or rule.hidden:
        return False
    if rule.unrestricted:
        return True
    if rule.own:
        return _follow_id(obj, rule.own) == user.pk
    for path in rule.employees:
        person = _follow(obj, path)
        if person is not None and (
            person.department_id in scope.department_ids or person.location_id in scope.location_ids
        ):
            return True
    return any(_follow_id(obj, path) in scope.location_ids for path in rule.locations)


def scope_description(user) -> str:
    """ "departments Finance, Sales; locations Berlin HQ" for the user's scope ("nothing" when empty)."""
    scope = scope_for(user)
    if scope is None:
        return "everything"
    parts = []
    if scope.department_ids:
        names = Department.objects.filter(pk__in=scope.department_ids).order_by("name").values_list("name", flat=True)
        parts.append(f"departments {', '.join(names)}")
    if scope.location_ids:
        names = Location.objects.filter(pk__in=scope.location_ids).order_by("name").values_list("name", flat=True)
        parts.append(f"locations {', '.join(names)}")
    return "; ".join(parts) or "nothing"


def refusal(obj: Model, user) -> str:
    """The sentence that refuses a change leaving `obj` outside `user`'s scope."""
    return (
        f"This {obj._meta.verbose_name} would be outside your scope ({scope_description(user)}): "
        "choose a department or location inside it, or ask an IT admin to make this change."
    )


def register_accounts_and_portal_rules() -> None:
    """The rules of accounts' models and portal's (portal cannot import accounts, so accounts says them)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice
    from django_otp_webauthn.models import WebAuthnCredential

    from accounts import models as m
    from portal import models as p

    catalog = "the catalog and settings IT works from: no person or place of its own"
    for model in (m.Location, m.Department, m.Role, m.Application, m.RoleApplication, m.SoDRule, m.AccessReview):
        register_scope(model, unrestricted=True, reason=catalog)
    register_scope(m.ScimConnection, unrestricted=True, reason="an identity provider's connection: settings")
    register_scope(m.UsageImport, unrestricted=True, reason="an uploaded sign-in log's counts, no person")
    register_scope(m.Employee, employees="")
    for model in (m.Entitlement, m.AccessRequest, m.ReviewItem, m.SoDException, m.UnmatchedUsage):
        register_scope(model, employees="employee")
    register_scope(m.ApprovalStep, employees="request__employee")
    register_scope(m.ApprovalDelegation, employees="delegator")
    register_scope(m.EmployeeImport, own="created_by")
    register_scope(m.AdminScope, own="user")

    anyone = "records about anyone (any target, any recipient, any payload): no person or place to scope them by"
    for model in (p.AuditEvent, p.AuditEventPersonal, p.OutboundEmail, p.EventDelivery):
        register_scope(model, hidden=True, reason=anyone)
    for model in (p.AuditCheckpoint, p.AuditChainHead):
        register_scope(model, unrestricted=True, reason="hashes of the audit chain, no personal data")
    register_scope(p.EventSubscriber, unrestricted=True, reason="a receiving system's settings")
    for model in (TOTPDevice, WebAuthnCredential, p.RecoveryCodeDevice):
        register_scope(model, employees="user__employee")
