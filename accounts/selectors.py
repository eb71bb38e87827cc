"""Reads of people and access, scoped to the person asking.

Views never fetch an employee or an entitlement by id unchecked: they start from the
signed-in user and go through these functions.
"""

from django.db.models import QuerySet

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
