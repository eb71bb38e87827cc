"""Reads of assets and licenses that lists and pages share."""

from django.db.models import Count, Q, QuerySet

from accounts.models import EntitlementStatus
from assets.models import License


def licenses_with_usage() -> QuerySet[License]:
    """Licenses annotated with `seats_used`: the application's active entitlements, counted, never stored."""
    return License.objects.select_related("application").annotate(
        seats_used=Count(
            "application__entitlements",
            filter=Q(application__entitlements__status=EntitlementStatus.ACTIVE),
        )
    )
