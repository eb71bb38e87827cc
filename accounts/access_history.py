"""Access as of a date, answered from the entitlements' history (django-simple-history), for auditors.

"Who had access to X on day D" and "what access did P have on day D": for each entitlement, its
last historical version written before the end of day D (in `TIME_ZONE`) says what it was that
day; it counts when that version is active or revoking (a revocation not yet confirmed by the
target still leaves the account in place) and was not deleted. The level is the one of that version,
so a later level change does not rewrite the answer. Read-only; a constant number of queries per
page (one correlated subquery picks the version).
"""

import datetime

from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from accounts.models import Entitlement, EntitlementStatus

HELD = (EntitlementStatus.ACTIVE, EntitlementStatus.REVOKING)


def end_of_day(day: datetime.date) -> datetime.datetime:
    """The first instant after `day` in the server's time zone."""
    return timezone.make_aware(datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time.min))


def access_on(*, day: datetime.date, application=None, employee=None) -> QuerySet:
    """Historical entitlement rows (with employee and application) held on `day`, by application then holder."""
    history = Entitlement.history.model
    until = end_of_day(day)
    versions = history.objects.filter(history_date__lt=until)
    if application is not None:
        versions = versions.filter(application_id=application.pk)
    if employee is not None:
        versions = versions.filter(employee_id=employee.pk)
    latest = (
        history.objects.filter(id=OuterRef("id"), history_date__lt=until)
        .order_by("-history_date", "-history_id")
        .values("history_id")[:1]
    )
    return (
        versions.filter(history_id=Subquery(latest))
        .exclude(history_type="-")
        .filter(status__in=HELD)
        .select_related("employee", "application")
        .order_by("application__name", "employee__last_name", "employee__first_name", "id")
    )
