"""Hardware returns done by the person who holds the hardware (self-service), and IT asking for one.

- `hardware_return_ship(item=, method=, ..., acting_user=)`: the holder says how the asset comes
  back: dropped off at an office on a day, or sent by courier with carrier and tracking number.
- `hardware_return_request(asset=, acting_user=, due_date=None)`: IT asks the holder of an assigned
  asset (not only a leaver) to give it back; they get an email with their return checklist.
- `return_link_token(employee)` / `employee_for_return_token(token)`: a leaver's login is disabled
  at the cut-off, so the reminder emails carry a signed link to their return checklist, valid for
  `LIFECYCLE["RETURN_LINK_DAYS"]` days. It shows and ships that person's returns and nothing else.

IT marks each item received in the admin (`flows.hardware_return_receive`).
"""

import datetime

from django.core import signing
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import Employee, Location
from assets import services as asset_services
from assets.models import AssetStatus, HardwareAsset
from offboarding.flows import lifecycle_setting
from offboarding.models import HardwareReturn, ReturnMethod, ReturnStatus
from portal.audit import audit_record
from portal.history import set_history_user
from portal.mail import email_send_on_commit, portal_url
from portal.models import AuditEvent

TOKEN_SALT = "portal.offboarding.hardware-return"


def return_link_token(employee: Employee) -> str:
    return signing.dumps({"e": employee.pk}, salt=TOKEN_SALT, compress=True)


def employee_for_return_token(token: str) -> Employee | None:
    """The employee a return link was made for, or None if it is forged, mangled or expired."""
    days = lifecycle_setting("RETURN_LINK_DAYS")
    try:
        data = signing.loads(token, salt=TOKEN_SALT, max_age=datetime.timedelta(days=days))
    except signing.BadSignature:
        return None
    pk = data.get("e") if isinstance(data, dict) else None
    if not isinstance(pk, int):
        return None
    return Employee.objects.filter(pk=pk, anonymised_at__isnull=True).first()


def return_link_url(employee: Employee) -> str:
    return portal_url("offboarding:return_link", return_link_token(employee))


@transaction.atomic
def hardware_return_ship(
    *,
    item: HardwareReturn,
    method: str,
    acting_user,
    via_link: bool = False,
    drop_off_location: Location | None = None,
    drop_off_date: datetime.date | None = None,
    carrier: str = "",
    tracking_number: str = "",
) -> HardwareReturn:
    """The holder confirms the asset is on its way back. Only an open return can be shipped.

    Drop-off: the office and the day (today or earlier, not before the return was opened); no
    carrier or tracking number. Courier: the carrier and the tracking number; no office or day.
    """
    carrier, tracking_number = (carrier or "").strip(), (tracking_number or "").strip()
    locked = HardwareReturn.objects.select_for_update(of=("self",)).select_related("asset").get(pk=item.pk)
    if locked.status != ReturnStatus.OPEN:
        when = f" on {timezone.localtime(locked.shipped_at):%d %b %Y}" if locked.shipped_at else ""
        raise ValidationError(
            f"The return of {locked.asset.asset_tag} is {locked.get_status_display().lower()}{when}; "
            "there is nothing more to confirm."
        )
    errors: dict[str, str] = {}
    today = timezone.localdate()
    if method == ReturnMethod.DROP_OFF:
        if tracking_number:
            errors["tracking_number"] = "A tracking number belongs to a courier return; leave it empty for a drop-off."
        if carrier:
            errors["carrier"] = "A carrier belongs to a courier return; leave it empty for a drop-off."
        if drop_off_location is None:
            errors["drop_off_location"] = "Choose the office where you dropped it off."
        if drop_off_date is None:
            errors["drop_off_date"] = "Give the day you dropped it off."
        elif drop_off_date > today:
            errors["drop_off_date"] = "Confirm a drop-off once it is done: the day cannot be in the future."
        elif drop_off_date < timezone.localtime(locked.created_at).date():
            errors["drop_off_date"] = "The day is before this return was opened."
    elif method == ReturnMethod.COURIER:
        if drop_off_location is not None or drop_off_date is not None:
            errors["method"] = "An office and a day belong to a drop-off; leave them empty for a courier."
        if not carrier:
            errors["carrier"] = "Name the courier (e.g. DHL, UPS)."
        if not tracking_number:
            errors["tracking_number"] = "Give the courier's tracking number."
        elif len(tracking_number) > HardwareReturn._meta.get_field("tracking_number").max_length:
            errors["tracking_number"] = "That tracking number is too long (at most 100 characters)."
        if len(carrier) > HardwareReturn._meta.get_field("carrier").max_length:
            errors["carrier"] = "That carrier name is too long (at most 50 characters)."
    else:
        errors["method"] = "Choose drop-off or courier."
    if errors:
        raise ValidationError(errors)
    locked.method = method
    locked.drop_off_location = drop_off_location
    locked.drop_off_date = drop_off_date
    locked.carrier = carrier
    locked.tracking_number = tracking_number
    locked.status = ReturnStatus.SHIPPED
    locked.shipped_at = timezone.now()
    set_history_user(locked, acting_user)
    locked.save(
        update_fields=[
            "method",
            "drop_off_location",
            "drop_off_date",
            "carrier",
            "tracking_number",
            "status",
            "shipped_at",
        ]
    )
    audit_record(
        action=AuditEvent.Action.RETURN_SHIPPED,
        target=locked,
        acting_user=acting_user,
        detail={
            "asset": locked.asset_id,
            "method": method,
            "carrier": carrier,
            "tracking_number": tracking_number,
            "drop_off_location": drop_off_location.pk if drop_off_location else None,
            "via": "return link" if via_link else "signed in",
            "employee": locked.employee_id,
        },
    )
    return locked


@transaction.atomic
def hardware_return_request(
    *, asset: HardwareAsset, acting_user, due_date: datetime.date | None = None
) -> HardwareReturn:
    """Ask the holder of an assigned asset to return it: an open return (no checklist run), the asset
    pending return, and an email with the link to their return checklist. Idempotent: an asset with an
    open return gets that one back."""
    locked = HardwareAsset.objects.select_for_update(of=("self",)).select_related("assigned_to").get(pk=asset.pk)
    existing = HardwareReturn.objects.filter(asset=locked, status__in=[ReturnStatus.OPEN, ReturnStatus.SHIPPED]).first()
    if existing is not None:
        return existing
    if locked.status != AssetStatus.ASSIGNED or locked.assigned_to is None:
        raise ValidationError(
            f"{locked.asset_tag} is {locked.get_status_display().lower()}; only an assigned asset can be asked back."
        )
    today = timezone.localdate()
    due_date = due_date or today + datetime.timedelta(days=lifecycle_setting("RETURN_DAYS"))
    if due_date < today:
        raise ValidationError({"due_date": "The due date is in the past."})
    holder = locked.assigned_to
    item = HardwareReturn(employee=holder, asset=locked, due_date=due_date)
    set_history_user(item, acting_user)
    item.save()
    asset_services.asset_mark_pending_return(asset=locked, acting_user=acting_user, detail={"return": item.pk})
    audit_record(
        action=AuditEvent.Action.RETURN_REQUESTED,
        target=item,
        acting_user=acting_user,
        detail={"asset": locked.pk, "employee": holder.pk},
    )
    email_send_on_commit(
        template="hardware_return_requested",
        to=[holder.work_email],
        context={"employee": holder, "item": item, "asset": locked, "url": portal_url("offboarding:my_returns")},
    )
    return item
