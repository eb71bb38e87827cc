"""Write path for hardware: check-out, check-in, lost, retired, terms accepted, and the
lifecycle's changes: reserved for a joiner, reservation released, pending return for a leaver.

Each service locks the asset row, checks its state, writes the asset, its
check-out log, a history row naming the acting user and an audit event, all in
one transaction. Repeating a call that already took effect is an error with a
clear message, never a second effect.
"""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import Employee, EmployeeStatus
from assets.models import AssetCheckout, AssetStatus, HardwareAsset
from portal.audit import audit_record
from portal.history import set_history_user
from portal.models import AuditEvent

CHECKOUT_ALLOWED_FROM = (AssetStatus.IN_STOCK, AssetStatus.IN_TRANSIT)
RETURN_STATUSES = (AssetStatus.IN_STOCK, AssetStatus.IN_REPAIR)
RETIRE_ALLOWED_FROM = (AssetStatus.IN_STOCK, AssetStatus.IN_REPAIR, AssetStatus.LOST)


def _lock(asset: HardwareAsset) -> HardwareAsset:
    # of=("self",): lock only the asset row. Without it PostgreSQL also locks the joined AssetModel
    # row, which serialises check-outs of every asset of the same model.
    return HardwareAsset.objects.select_for_update(of=("self",)).select_related("model").get(pk=asset.pk)


def _open_checkout(asset: HardwareAsset) -> AssetCheckout | None:
    return (
        AssetCheckout.objects.select_for_update(of=("self",))
        .select_related("employee")
        .filter(asset=asset, checked_in_at__isnull=True)
        .first()
    )


def _save_asset(asset: HardwareAsset, acting_user, fields: list[str]) -> None:
    asset.full_clean(validate_unique=False)
    set_history_user(asset, acting_user)
    asset.save(update_fields=fields)


@transaction.atomic
def asset_check_out(
    *, asset: HardwareAsset, employee: Employee, acting_user, terms_accepted: bool = False, note: str = ""
) -> AssetCheckout:
    """Hand an in-stock asset to an employee. Terms may be accepted now or later by the employee.

    Refused for an asset someone holds or whose last check-out is still open (e.g. on its way
    back from a leaver), and for a terminated employee. The employee row is locked before the
    asset (the order a leaver run uses), so a termination committed meanwhile is seen and
    two check-outs of one asset run one after the other: the second is refused.
    """
    try:
        fresh_employee = Employee.objects.select_for_update(no_key=True).only("pk", "status").get(pk=employee.pk)
    except Employee.DoesNotExist:
        raise ValidationError(f"{employee.full_name} no longer exists.")
    if fresh_employee.status == EmployeeStatus.TERMINATED:
        raise ValidationError(f"{employee.full_name} is terminated; hardware cannot be checked out to them.")
    asset = _lock(asset)
    if asset.status not in CHECKOUT_ALLOWED_FROM:
        holder = f" (held by {asset.assigned_to.full_name})" if asset.assigned_to_id else ""
        raise ValidationError(
            f"{asset.asset_tag} is {asset.get_status_display().lower()}{holder}; only an asset in stock "
            "or in transit can be checked out."
        )
    open_checkout = _open_checkout(asset)
    if open_checkout is not None:
        raise ValidationError(
            f"{asset.asset_tag} is still checked out to {open_checkout.employee.full_name}; "
            "check it in before checking it out again."
        )
    if asset.reserved_for_id and asset.reserved_for_id != employee.pk:
        raise ValidationError(
            f"{asset.asset_tag} is reserved for {asset.reserved_for.full_name}; release the reservation first."
        )
    now = timezone.now()
    checkout = AssetCheckout(
        asset=asset,
        employee=employee,
        checked_out_at=now,
        checked_out_by=acting_user if getattr(acting_user, "pk", None) else None,
        terms_accepted_at=now if terms_accepted else None,
        note=note,
    )
    checkout.full_clean()
    set_history_user(checkout, acting_user)
    checkout.save()
    asset.status = AssetStatus.ASSIGNED
    asset.assigned_to = employee
    asset.reserved_for = None
    _save_asset(asset, acting_user, ["status", "assigned_to", "reserved_for"])
    audit_record(
        action=AuditEvent.Action.CHECK_OUT,
        target=asset,
        acting_user=acting_user,
        detail={"employee": employee.pk, "terms_accepted": terms_accepted},
    )
    return checkout


def _close_open_checkout(asset: HardwareAsset, acting_user, condition: str, note: str) -> AssetCheckout | None:
    checkout = _open_checkout(asset)
    if checkout is None:
        return None
    checkout.checked_in_at = timezone.now()
    checkout.checked_in_by = acting_user if getattr(acting_user, "pk", None) else None
    checkout.condition_on_return = condition
    if note:
        checkout.note = f"{checkout.note}\n{note}".strip()
    # Validate (e.g. the length of `condition`) so SQLite and PostgreSQL refuse the same input.
    checkout.full_clean()
    set_history_user(checkout, acting_user)
    checkout.save(update_fields=["checked_in_at", "checked_in_by", "condition_on_return", "note"])
    return checkout


@transaction.atomic
def asset_check_in(
    *,
    asset: HardwareAsset,
    acting_user,
    condition: str = "good",
    to_status: str = AssetStatus.IN_STOCK,
    note: str = "",
) -> HardwareAsset:
    """Take an asset back from its holder into stock (or into repair when it came back damaged)."""
    if to_status not in RETURN_STATUSES:
        raise ValidationError("A returned asset goes back in stock or into repair.")
    asset = _lock(asset)
    if asset.status not in (AssetStatus.ASSIGNED, AssetStatus.PENDING_RETURN, AssetStatus.IN_TRANSIT):
        raise ValidationError(
            f"{asset.asset_tag} is {asset.get_status_display().lower()}, not held by anyone; nothing to check in."
        )
    previous_holder = asset.assigned_to_id
    _close_open_checkout(asset, acting_user, condition, note)
    asset.status = to_status
    asset.assigned_to = None
    _save_asset(asset, acting_user, ["status", "assigned_to"])
    audit_record(
        action=AuditEvent.Action.CHECK_IN,
        target=asset,
        acting_user=acting_user,
        detail={"employee": previous_holder, "condition": condition, "status": to_status},
    )
    return asset


@transaction.atomic
def asset_mark_lost(*, asset: HardwareAsset, acting_user, note: str = "") -> HardwareAsset:
    """Record an asset as lost. Its open check-out is closed with the note; the holder is kept in history."""
    asset = _lock(asset)
    if asset.status in (AssetStatus.LOST, AssetStatus.RETIRED):
        raise ValidationError(f"{asset.asset_tag} is already {asset.get_status_display().lower()}.")
    previous = asset.status
    previous_holder = asset.assigned_to_id
    _close_open_checkout(asset, acting_user, "lost", note or "Marked lost.")
    asset.status = AssetStatus.LOST
    asset.assigned_to = None
    asset.reserved_for = None
    _save_asset(asset, acting_user, ["status", "assigned_to", "reserved_for"])
    audit_record(
        action=AuditEvent.Action.ASSET_STATUS,
        target=asset,
        acting_user=acting_user,
        detail={"from": previous, "to": AssetStatus.LOST, "employee": previous_holder, "note": note},
    )
    return asset


@transaction.atomic
def asset_retire(*, asset: HardwareAsset, acting_user, note: str = "") -> HardwareAsset:
    """Retire an asset that nobody holds (in stock, in repair or lost) and that has no open check-out."""
    asset = _lock(asset)
    if asset.status == AssetStatus.RETIRED:
        raise ValidationError(f"{asset.asset_tag} is already retired.")
    if asset.assigned_to_id:
        raise ValidationError(
            f"{asset.asset_tag} is held by {asset.assigned_to.full_name}; check it in before retiring it."
        )
    if asset.status not in RETIRE_ALLOWED_FROM:
        raise ValidationError(
            f"{asset.asset_tag} is {asset.get_status_display().lower()}; only an asset in stock, "
            "in repair or lost can be retired. Check it in first."
        )
    if _open_checkout(asset) is not None:
        raise ValidationError(f"{asset.asset_tag} still has an open check-out; check it in before retiring it.")
    previous = asset.status
    asset.status = AssetStatus.RETIRED
    asset.reserved_for = None
    _save_asset(asset, acting_user, ["status", "reserved_for"])
    audit_record(
        action=AuditEvent.Action.ASSET_STATUS,
        target=asset,
        acting_user=acting_user,
        detail={"from": previous, "to": AssetStatus.RETIRED, "note": note},
    )
    return asset


@transaction.atomic
def checkout_accept_terms(*, checkout: AssetCheckout, acting_user) -> AssetCheckout:
    """The holder accepts the terms for a checked-out asset. Idempotent."""
    # Lock only the check-out row: check-in locks the asset and then its check-out, so locking both
    # here in one statement could take them in the other order and deadlock.
    checkout = AssetCheckout.objects.select_for_update(of=("self",)).select_related("asset").get(pk=checkout.pk)
    if checkout.checked_in_at is not None:
        raise ValidationError("This asset has been returned; there are no terms to accept.")
    if checkout.terms_accepted_at is not None:
        return checkout
    checkout.terms_accepted_at = timezone.now()
    set_history_user(checkout, acting_user)
    checkout.save(update_fields=["terms_accepted_at"])
    audit_record(
        action=AuditEvent.Action.TERMS,
        target=checkout.asset,
        acting_user=acting_user,
        detail={"checkout": checkout.pk, "terms_version": checkout.terms_version},
    )
    return checkout


# --- Lifecycle: a joiner's kit, a leaver's hardware ----------------------------------------


@transaction.atomic
def asset_reserve(
    *, asset: HardwareAsset, employee: Employee, acting_user, detail: dict | None = None
) -> HardwareAsset:
    """Set an in-stock asset aside for a joiner (their role's kit); it stays in stock until checked out.

    Refused for an asset not in stock, one already reserved (for anyone: release it first), and
    for a terminated employee. The employee row is locked before the asset, as in a check-out.
    `detail` adds the caller's context (e.g. the join run) to the audit event.
    """
    try:
        fresh_employee = Employee.objects.select_for_update(no_key=True).only("pk", "status").get(pk=employee.pk)
    except Employee.DoesNotExist:
        raise ValidationError(f"{employee.full_name} no longer exists.")
    if fresh_employee.status == EmployeeStatus.TERMINATED:
        raise ValidationError(f"{employee.full_name} is terminated; no hardware can be reserved for them.")
    asset = _lock(asset)
    if asset.status != AssetStatus.IN_STOCK:
        raise ValidationError(
            f"{asset.asset_tag} is {asset.get_status_display().lower()}; only an asset in stock can be reserved."
        )
    if asset.reserved_for_id is not None:
        whom = "them" if asset.reserved_for_id == employee.pk else asset.reserved_for.full_name
        raise ValidationError(f"{asset.asset_tag} is already reserved for {whom}.")
    asset.reserved_for = employee
    _save_asset(asset, acting_user, ["reserved_for"])
    audit_record(
        action=AuditEvent.Action.ASSET_RESERVED,
        target=asset,
        acting_user=acting_user,
        detail={**(detail or {}), "employee": employee.pk},
    )
    return asset


@transaction.atomic
def asset_release_reservation(
    *, asset: HardwareAsset, acting_user, employee: Employee | None = None, detail: dict | None = None
) -> HardwareAsset:
    """Put a reserved asset back into free stock (e.g. the joiner left before day one).

    Refused for an asset that is not reserved, or (when `employee` is given) reserved for someone
    else, so a caller working from a stale list never releases another joiner's kit.
    """
    asset = _lock(asset)
    if asset.reserved_for_id is None:
        raise ValidationError(f"{asset.asset_tag} is not reserved for anyone; nothing to release.")
    if employee is not None and asset.reserved_for_id != employee.pk:
        raise ValidationError(
            f"{asset.asset_tag} is reserved for {asset.reserved_for.full_name}, not for {employee.full_name}."
        )
    previous = asset.reserved_for_id
    asset.reserved_for = None
    _save_asset(asset, acting_user, ["reserved_for"])
    audit_record(
        action=AuditEvent.Action.ASSET_RESERVATION_RELEASED,
        target=asset,
        acting_user=acting_user,
        detail={**(detail or {}), "employee": previous},
    )
    return asset


@transaction.atomic
def asset_mark_pending_return(*, asset: HardwareAsset, acting_user, detail: dict | None = None) -> HardwareAsset:
    """A leaver must give an assigned asset back: it becomes pending return.

    The holder and the open check-out stay until the asset is checked in (`asset_check_in`).
    Refused for an asset nobody holds, and for one already pending return.
    """
    asset = _lock(asset)
    if asset.status != AssetStatus.ASSIGNED:
        raise ValidationError(
            f"{asset.asset_tag} is {asset.get_status_display().lower()}; only an assigned asset can be "
            "marked pending return."
        )
    asset.status = AssetStatus.PENDING_RETURN
    _save_asset(asset, acting_user, ["status"])
    audit_record(
        action=AuditEvent.Action.ASSET_STATUS,
        target=asset,
        acting_user=acting_user,
        detail={
            **(detail or {}),
            "from": AssetStatus.ASSIGNED,
            "to": AssetStatus.PENDING_RETURN,
            "employee": asset.assigned_to_id,
        },
    )
    return asset
