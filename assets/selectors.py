"""Reads of assets and licenses that lists and pages share."""

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

from accounts.models import Employee, Entitlement, EntitlementStatus
from assets.models import HELD_STATUSES, AssetCheckout, HardwareAsset, License


def licenses_with_usage() -> QuerySet[License]:
    """Licenses annotated with `seats_used`: the application's active (or still revoking) entitlements.

    Counted, never stored. A revocation the vendor has not confirmed yet still holds its seat.

    A correlated subquery rather than a join, so further annotations or filters on the queryset
    cannot multiply the count; one query however many licenses.
    """
    holding = (
        Entitlement.objects.filter(
            application=OuterRef("application"), status__in=[EntitlementStatus.ACTIVE, EntitlementStatus.REVOKING]
        )
        .order_by()
        .values("application")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return License.objects.select_related("application").annotate(
        seats_used=Coalesce(Subquery(holding, output_field=IntegerField()), 0)
    )


def hardware_for_employee(employee: Employee) -> QuerySet[HardwareAsset]:
    """The hardware `employee` holds (assigned or pending return), by asset tag.

    Each asset carries `checked_out_at` and `terms_accepted_at` from its open check-out.
    One query whatever their number: the model and the check-out come in the same query.
    """
    open_checkout = AssetCheckout.objects.filter(asset=OuterRef("pk"), checked_in_at__isnull=True).order_by(
        "-checked_out_at"
    )
    return (
        HardwareAsset.objects.filter(assigned_to=employee, status__in=HELD_STATUSES)
        .select_related("model")
        .annotate(
            checkout_id=Subquery(open_checkout.values("pk")[:1]),
            checked_out_at=Subquery(open_checkout.values("checked_out_at")[:1]),
            terms_accepted_at=Subquery(open_checkout.values("terms_accepted_at")[:1]),
        )
        .order_by("asset_tag")
    )


def hardware_for_employees(employee_ids) -> QuerySet[HardwareAsset]:
    """The hardware a set of employees holds (a manager's team), with model; one query for all of them."""
    return (
        HardwareAsset.objects.filter(assigned_to_id__in=employee_ids, status__in=HELD_STATUSES)
        .select_related("model")
        .order_by("assigned_to_id", "asset_tag")
    )


def checkout_for_holder(user, pk: int) -> AssetCheckout:
    """The open check-out `pk` if the signed-in person holds its asset; `Http404` otherwise."""
    from django.http import Http404

    from accounts.selectors import employee_for_user

    employee = employee_for_user(user)
    checkout = (
        AssetCheckout.objects.filter(pk=pk, employee=employee, checked_in_at__isnull=True)
        .select_related("asset__model")
        .first()
        if employee is not None
        else None
    )
    if checkout is None:
        raise Http404("No such hardware check-out.")
    return checkout
