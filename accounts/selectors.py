"""Reads of people and access, scoped to the person asking.

Views never fetch an employee or an entitlement by id unchecked: they start from the
signed-in user and go through these functions. Also the employee search by name, number
or email that the admin lists share, built only from lookups an index answers.
"""

import re

from django.db.models import Q, QuerySet

from accounts.models import LIVE_ENTITLEMENT_STATUSES, Employee, Entitlement


def employee_for_user(user) -> Employee | None:
    """The employee record linked to `user`'s login, with what a profile shows; None when there is none.

    One query. Anonymous users have no employee record.
    """
    if not getattr(user, "is_authenticated", False):
        return None
    return Employee.objects.select_related("department", "location", "manager", "role").filter(user_id=user.pk).first()


def entitlements_for_employee(employee: Employee) -> QuerySet[Entitlement]:
    """`employee`'s live entitlements (pending, active or being revoked), by application name.

    One query whatever their number: the application comes in the same query.
    """
    return (
        Entitlement.objects.filter(employee=employee, status__in=LIVE_ENTITLEMENT_STATUSES)
        .select_related("application")
        .order_by("application__name", "id")
    )


def _name_variants(text: str) -> list[str]:
    """The text as typed and capitalised: names are stored capitalised ("ada" → "Ada", "LOVELACE" → "Lovelace")."""
    return list(dict.fromkeys([text, text[:1].upper() + text[1:], text.capitalize()]))


def _prefix_q(field: str, text: str) -> Q:
    # A range, not `startswith`: SQLite's LIKE ignores case and cannot use the index; a range can.
    return Q(**{f"{field}__gte": text, f"{field}__lt": text + "\U0010ffff"})


def employee_personal_email_index(value: str) -> str:
    """The blind index of a personal email (what `personal_email_index` holds for it); "" for blank."""
    return Employee._meta.get_field("personal_email_index").index_of(value)


def employee_personal_phone_index(value: str) -> str:
    """The blind index of a personal phone number (its digits); "" for blank."""
    return Employee._meta.get_field("personal_phone_index").index_of(value)


def employees_by_personal_email(value: str) -> QuerySet[Employee]:
    """Employees whose personal email equals `value` (any case, spaces around ignored): through the blind
    index, the only way to find an encrypted value. Nobody for a blank value."""
    index = employee_personal_email_index(value)
    return Employee.objects.filter(personal_email_index=index) if index else Employee.objects.none()


def employees_by_personal_phone(value: str) -> QuerySet[Employee]:
    """Employees whose personal phone has the same digits as `value` ("+49 30 1234" = "49301234")."""
    index = employee_personal_phone_index(value)
    return Employee.objects.filter(personal_phone_index=index) if index else Employee.objects.none()


PHONE_SEARCH = re.compile(r"^\+?[\d ()./-]{6,}$")


def employee_search_q(term: str, *, personal: bool = False) -> Q:
    """Employees matching a search term, with lookups that each use an index.

    Matches an employee number (exactly, any case); a work email (exactly, any case) when the
    term has an "@"; and, when it has no digit, the start of a last or first name, "First Last"
    and "Last, First" with one of the two in full ("Ada Love", "Ad Lovelace"). Names are tried as
    typed and capitalised. Preferred names, other fields and the middle of a name are not
    searched: no index answers them, so they would read every row. With `personal` (for staff who may
    see personal data) also an exact personal email, or a phone number's digits, through the blind
    indexes: encrypted values cannot be searched in part.
    """
    term = " ".join(term.split())
    if "@" in term:
        q = Q(work_email=term.lower())
        if personal:
            q |= Q(personal_email_index=employee_personal_email_index(term))
        return q
    q = Q(employee_number__in=list(dict.fromkeys([term, term.upper()])))
    if personal and PHONE_SEARCH.match(term):
        q |= Q(personal_phone_index=employee_personal_phone_index(term))
    if any(char.isdigit() for char in term):
        return q
    for variant in _name_variants(term):
        q |= _prefix_q("last_name", variant) | _prefix_q("first_name", variant)
    if "," in term:
        last, _, first = (part.strip() for part in term.partition(","))
    else:
        first, _, last = term.partition(" ")
    if first and last:
        # One name in full and the other's start: a narrow range in (first_name, last_name) or
        # (last_name, first_name). Both as prefixes would read everyone with either name.
        for first_variant in _name_variants(first):
            for last_variant in _name_variants(last):
                q |= Q(first_name=first_variant) & _prefix_q("last_name", last_variant)
                q |= Q(last_name=last_variant) & _prefix_q("first_name", first_variant)
    return q
