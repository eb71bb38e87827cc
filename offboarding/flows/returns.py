"""Hardware returns: every way an asset a person holds comes back to IT.

A leave run opens one return per asset held and reminds the leaver; the holder says how it
comes back (drop-off or courier), through their page or a signed link (their login is disabled
at the cut-off); IT asks any holder for an asset back, and marks each item received. The asset
rows themselves are written only by `assets.services` (pending return, release, check-in).
"""

import datetime

from django.core import signing
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import (
    Employee,
    Location,
)
from assets import services as asset_services
from assets.models import HELD_STATUSES, AssetStatus, HardwareAsset
from offboarding import engine
from offboarding.conf import lifecycle_setting
from offboarding.flows.common import held_by
from offboarding.flows.emails import email_addresses, lifecycle_email_send
from offboarding.models import (
    ChecklistRun,
    HardwareReturn,
    ReturnCondition,
    ReturnMethod,
    ReturnStatus,
    Task,
    TaskStatus,
)
from portal.audit import audit_record
from portal.events import event_emit
from portal.history import set_history_user
from portal.mail import email_send_on_commit, portal_url
from portal.models import AuditEvent, EventType

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


def hardware_returns_open(*, run: ChecklistRun, acting_user=None) -> dict:
    """One open `HardwareReturn` per asset the leaver holds, due `RETURN_DAYS` after the cut-off.

    Each asset goes to pending return (`assets.services.asset_mark_pending_return`; its holder
    stays until it is checked in); assets only reserved for the person are released back to
    stock. Idempotent: an asset with an open return gets no second one.
    """
    employee = run.employee
    due = timezone.localtime(run.effective_at).date() + datetime.timedelta(days=lifecycle_setting("RETURN_DAYS"))
    created, existing = [], []
    for asset_id in HardwareAsset.objects.filter(held_by(employee)).order_by("asset_tag").values_list("pk", flat=True):
        with transaction.atomic():
            # Locked (a read) so the return and the asset's status change together.
            asset = HardwareAsset.objects.select_for_update(of=("self",)).get(pk=asset_id)
            if asset.assigned_to_id != employee.pk or asset.status not in HELD_STATUSES:
                continue
            open_return = HardwareReturn.objects.filter(
                asset=asset, status__in=[ReturnStatus.OPEN, ReturnStatus.SHIPPED]
            ).first()
            if open_return is None:
                item = HardwareReturn(run=run, employee=employee, asset=asset, due_date=due)
                set_history_user(item, acting_user)
                item.save()
                created.append(item.pk)
            else:
                existing.append(open_return.pk)
            if asset.status == AssetStatus.ASSIGNED:
                asset_services.asset_mark_pending_return(asset=asset, acting_user=acting_user, detail={"run": run.pk})
    released = []
    for asset in HardwareAsset.objects.filter(reserved_for=employee).order_by("asset_tag"):
        try:
            asset_services.asset_release_reservation(
                asset=asset, employee=employee, acting_user=acting_user, detail={"run": run.pk}
            )
        except ValidationError:
            continue  # released or handed to someone else meanwhile
        released.append(asset.asset_tag)
    return {"created": created, "existing": existing, "released": released, "due_date": due.isoformat()}


def hardware_returns_remind(*, run: ChecklistRun, now: datetime.datetime | None = None) -> dict:
    """Email the leaver (personal and work address) about their open returns, at most every
    `REMINDER_INTERVAL_DAYS`. Returns how many are still open and whether a mail went out."""
    now = now or timezone.now()
    interval = datetime.timedelta(days=lifecycle_setting("REMINDER_INTERVAL_DAYS"))
    open_returns = list(
        HardwareReturn.objects.filter(run=run, status=ReturnStatus.OPEN).select_related("asset__model").order_by("pk")
    )
    due_now = [r for r in open_returns if r.last_reminded_at is None or r.last_reminded_at <= now - interval]
    sent = False
    if due_now:
        employee = run.employee
        recipients = email_addresses(employee, ["personal", "work"])
        if recipients:
            lifecycle_email_send(
                template="hardware_return_reminder",
                employee=employee,
                to=recipients,
                context={
                    "returns": open_returns,
                    "overdue": [r for r in open_returns if r.due_date < now.date()],
                    "return_url": return_link_url(employee),
                },
            )
            sent = True
        with transaction.atomic():
            for item in due_now:
                HardwareReturn.objects.filter(pk=item.pk).update(
                    reminders_sent=F("reminders_sent") + 1, last_reminded_at=now
                )
    return {"open": len(open_returns), "reminded": [r.pk for r in due_now], "sent": sent}


def hardware_return_closed_reason(item: HardwareReturn) -> str:
    """Why a return that is no longer open cannot be confirmed again, in the holder's words."""
    tag = item.asset.asset_tag
    if item.status == ReturnStatus.RECEIVED:
        when = f" on {timezone.localtime(item.received_at):%d %b %Y}" if item.received_at else ""
        return f"IT received {tag} already{when}; there is nothing more to confirm."
    if item.status == ReturnStatus.SHIPPED:
        when = f" on {timezone.localtime(item.shipped_at):%d %b %Y %H:%M}" if item.shipped_at else ""
        return (
            f"{tag} was already confirmed as on its way{when} (perhaps in another tab or window); nothing was changed."
        )
    return f"The return of {tag} is {item.get_status_display().lower()}; there is nothing to confirm."


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
        raise ValidationError(hardware_return_closed_reason(locked))
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


@transaction.atomic
def hardware_return_receive(
    *, item: HardwareReturn, acting_user, condition: str = ReturnCondition.GOOD, note: str = ""
) -> HardwareReturn:
    """IT has the asset back: the return is received and the asset checked in.

    Good condition: back in stock; damaged or missing parts: into repair
    (`assets.services.asset_check_in`). An asset IT already checked in through the hardware
    admin is left as it is. Once nothing of the leave run is still out, its pending follow-up
    reminders are skipped, so the run closes as soon as its other steps are done. Refused for a
    return that is not open or shipped (received twice, or cancelled).
    """
    if condition not in ReturnCondition.values:
        raise ValidationError(f"Unknown condition {condition!r}; choose one of {', '.join(ReturnCondition.values)}.")
    item = HardwareReturn.objects.select_for_update(of=("self",)).select_related("asset").get(pk=item.pk)
    if item.status not in (ReturnStatus.OPEN, ReturnStatus.SHIPPED):
        state = "was received already" if item.status == ReturnStatus.RECEIVED else "was cancelled"
        raise ValidationError(
            f"The return of {item.asset.asset_tag} {state}; only an open or shipped return can be received."
        )
    asset = item.asset
    checked_in = asset.assigned_to_id == item.employee_id and asset.status in HELD_STATUSES
    if checked_in:
        asset_services.asset_check_in(
            asset=asset,
            acting_user=acting_user,
            condition=condition,
            to_status=AssetStatus.IN_STOCK if condition == ReturnCondition.GOOD else AssetStatus.IN_REPAIR,
            note=note or f"Returned by a leaver (return #{item.pk}).",
        )
    item.status = ReturnStatus.RECEIVED
    item.received_at = timezone.now()
    item.received_by = acting_user if getattr(acting_user, "pk", None) else None
    item.condition = condition
    set_history_user(item, acting_user)
    item.save(update_fields=["status", "received_at", "received_by", "condition"])
    audit_record(
        action=AuditEvent.Action.RETURN_RECEIVED,
        target=item,
        acting_user=acting_user,
        detail={
            "asset": asset.pk,
            "run": item.run_id,
            "condition": condition,
            "checked_in": checked_in,
        },
    )
    event_emit(
        event_type=EventType.HARDWARE_RETURNED,
        data=lambda: {
            "hardware_return": item.pk,
            "asset_tag": asset.asset_tag,
            "serial": asset.serial,
            "condition": condition,
            "employee": {"employee_number": item.employee.employee_number, "work_email": item.employee.work_email},
        },
    )
    if item.run_id is not None:
        _stop_return_reminders(run=item.run, acting_user=acting_user)
    return item


def _stop_return_reminders(*, run: ChecklistRun, acting_user) -> None:
    """Once no return of the leave run is still out, end its reminders: the repeating reminder
    runs now and finishes (it finds nothing open), and follow-up reminder tasks of runs made
    before reminders repeated are skipped. The run then closes as soon as its other steps are done."""
    if HardwareReturn.objects.filter(run=run, status__in=[ReturnStatus.OPEN, ReturnStatus.SHIPPED]).exists():
        return
    follow_ups = Task.objects.filter(
        run=run, action="remind_hardware_returns", parent__isnull=False, status=TaskStatus.PENDING
    )
    for task in follow_ups:
        try:
            engine.task_skip(task=task, acting_user=acting_user, reason="Every item is back; no more reminders.")
        except ValidationError:
            continue  # it started meanwhile: it finds nothing open and ends by itself
    engine.tasks_start_now(run=run, action="remind_hardware_returns")
