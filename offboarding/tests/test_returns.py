"""Hardware returns (offboarding.flows.returns) by their holder: IT asking for one, shipping signed in or by
signed link, the returns page, and the link in the leaver's reminder.
"""

import datetime

import pytest
from django.core import signing
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from accounts.models import EmployeeStatus
from accounts.tests.factories import LocationFactory
from assets.models import AssetStatus
from assets.services import asset_check_out
from assets.tests.factories import HardwareAssetFactory
from offboarding.flows.returns import (
    employee_for_return_token,
    hardware_return_request,
    hardware_return_ship,
    return_link_token,
)
from offboarding.models import (
    HardwareReturn,
    ReturnStatus,
)
from portal.testing.assertions import refused_and_nothing_written

pytestmark = pytest.mark.django_db


# --- IT asks for a return ------------------------------------------------------------------------


def test_it_asks_the_holder_to_return_an_asset(cast, laptop, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        item = hardware_return_request(asset=laptop, acting_user=cast.helpdesk)
    laptop.refresh_from_db()
    assert (item.employee, item.status, item.run) == (cast.employee, ReturnStatus.OPEN, None)
    assert laptop.status == AssetStatus.PENDING_RETURN and laptop.assigned_to == cast.employee
    assert mailoutbox[-1].to == ["employee@example.com"] and "/returns/" in mailoutbox[-1].body
    assert hardware_return_request(asset=laptop, acting_user=cast.helpdesk) == item  # idempotent
    assert HardwareReturn.objects.count() == 1


def test_an_asset_nobody_holds_cannot_be_asked_back(cast):
    with pytest.raises(ValidationError, match="only an assigned asset can be asked back"):
        hardware_return_request(asset=HardwareAssetFactory(), acting_user=cast.helpdesk)
    assert not HardwareReturn.objects.exists()


# --- Shipping ------------------------------------------------------------------------------------


def test_courier_return_is_confirmed_with_carrier_and_tracking(cast, item):
    hardware_return_ship(
        item=item, method="courier", carrier="DHL", tracking_number="JD0142", acting_user=cast.employee.user
    )
    item.refresh_from_db()
    assert (item.status, item.carrier, item.tracking_number) == (ReturnStatus.SHIPPED, "DHL", "JD0142")
    assert item.shipped_at is not None


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"method": "drop_off", "tracking_number": "JD1", "drop_off_date": "today"}, "tracking_number", "courier"),
        ({"method": "drop_off", "drop_off_date": "today", "no_office": True}, "drop_off_location", "Choose the office"),
        ({"method": "drop_off", "drop_off_date": "tomorrow"}, "drop_off_date", "cannot be in the future"),
        ({"method": "courier", "carrier": "DHL"}, "tracking_number", "tracking number"),
        ({"method": "courier", "tracking_number": "JD1"}, "carrier", "Name the courier"),
        ({"method": "pigeon"}, "method", "Choose drop-off or courier"),
    ],
)
def test_bad_shipping_details_are_refused_and_change_nothing(cast, item, data, field, message):
    today = timezone.localdate()
    days = {"today": today, "tomorrow": today + datetime.timedelta(days=1)}
    kwargs = {
        "method": data["method"],
        "carrier": data.get("carrier", ""),
        "tracking_number": data.get("tracking_number", ""),
    }
    if data["method"] == "drop_off":
        kwargs["drop_off_date"] = days[data["drop_off_date"]]
        kwargs["drop_off_location"] = None if data.get("no_office") else LocationFactory()
    with refused_and_nothing_written(ValidationError) as exc:
        hardware_return_ship(item=item, acting_user=cast.employee.user, **kwargs)
    assert message in " ".join(exc.value.message_dict[field])
    item.refresh_from_db()
    assert item.status == ReturnStatus.OPEN and item.method == "" and item.tracking_number == ""


def test_a_shipped_return_cannot_be_shipped_again(cast, item):
    office = LocationFactory()
    hardware_return_ship(
        item=item,
        method="drop_off",
        drop_off_location=office,
        drop_off_date=timezone.localdate(),
        acting_user=cast.employee.user,
    )
    with pytest.raises(ValidationError, match="already confirmed as on its way"):
        hardware_return_ship(
            item=item, method="courier", carrier="UPS", tracking_number="1Z", acting_user=cast.employee.user
        )


def test_the_returns_page_shows_progress_and_a_tracking_number_on_a_drop_off_is_explained(cast, client, item):
    office = LocationFactory(name="Berlin HQ")
    client.force_login(cast.employee.user)
    page = client.get(reverse("offboarding:my_returns")).content.decode()
    assert "0 of 1 item on the way or back" in page and 'max="1" value="0"' in page
    prefix = f"r{item.pk}"
    response = client.post(
        reverse("offboarding:return_ship", args=[item.pk]),
        {
            f"{prefix}-method": "drop_off",
            f"{prefix}-drop_off_location": office.pk,
            f"{prefix}-drop_off_date": timezone.localdate().isoformat(),
            f"{prefix}-tracking_number": "JD0142",
        },
    )
    assert response.status_code == 400
    assert "A tracking number belongs to a courier return" in response.content.decode()
    item.refresh_from_db()
    assert item.status == ReturnStatus.OPEN
    response = client.post(
        reverse("offboarding:return_ship", args=[item.pk]),
        {
            f"{prefix}-method": "drop_off",
            f"{prefix}-drop_off_location": office.pk,
            f"{prefix}-drop_off_date": timezone.localdate().isoformat(),
        },
        follow=True,
    )
    assert "is marked dropped off" in response.content.decode()
    assert "1 of 1 item on the way or back" in response.content.decode()


def test_the_signed_link_shows_only_its_owner_returns_and_works_without_login(cast, client, item):
    other_asset = HardwareAssetFactory(asset_tag="LT-2002")
    asset_check_out(asset=other_asset, employee=cast.other_employee, acting_user=None, terms_accepted=True)
    other_item = hardware_return_request(asset=other_asset, acting_user=None)
    token = return_link_token(cast.employee)
    page = client.get(reverse("offboarding:return_link", args=[token]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "LT-1001" in html and "LT-2002" not in html
    # Someone else's return through this link: not found, and unchanged.
    response = client.post(
        reverse("offboarding:return_link_ship", args=[token, other_item.pk]),
        {
            f"r{other_item.pk}-method": "courier",
            f"r{other_item.pk}-carrier": "DHL",
            f"r{other_item.pk}-tracking_number": "X",
        },
    )
    assert response.status_code == 404
    other_item.refresh_from_db()
    assert other_item.status == ReturnStatus.OPEN
    # A forged or mangled token: not found.
    forged = signing.dumps({"e": cast.other_employee.pk}, salt="another-salt", compress=True)
    assert client.get(reverse("offboarding:return_link", args=[forged])).status_code == 404
    assert client.get(reverse("offboarding:return_link", args=[token[:-3] + "abc"])).status_code == 404


def test_an_expired_link_is_refused(cast, client, settings):
    token = return_link_token(cast.employee)
    assert employee_for_return_token(token) == cast.employee
    settings.LIFECYCLE = {**settings.LIFECYCLE, "RETURN_LINK_DAYS": -1}
    assert employee_for_return_token(token) is None
    assert client.get(reverse("offboarding:return_link", args=[token])).status_code == 404


def test_leaver_reminder_email_carries_a_working_return_link(
    cast, laptop, client, django_capture_on_commit_callbacks, mailoutbox
):
    from offboarding.flows.leaver import employee_terminate

    cast.employee.personal_email = "erin@home.example"
    cast.employee.save()
    with django_capture_on_commit_callbacks(execute=True):
        employee_terminate(
            employee=cast.employee, last_day=timezone.localdate(), acting_user=cast.helpdesk, immediate=True
        )
    reminder = next(m for m in mailoutbox if "return your company hardware" in m.subject)
    link = next(line.strip() for line in reminder.body.splitlines() if "/returns/link/" in line)
    path = link.split("127.0.0.1:8000", 1)[1]
    cast.employee.refresh_from_db()
    assert cast.employee.status == EmployeeStatus.TERMINATED
    assert "LT-1001" in client.get(path).content.decode()


def test_a_shipment_through_the_link_is_audited_as_the_links_owner_not_whoever_is_signed_in(cast, client, item):
    from portal.models import AuditEvent

    client.force_login(cast.teammate.user)  # someone else signed in on the same browser
    token = return_link_token(cast.employee)
    prefix = f"r{item.pk}"
    data = {f"{prefix}-method": "courier", f"{prefix}-carrier": "DHL", f"{prefix}-tracking_number": "JD7"}
    client.post(reverse("offboarding:return_link_ship", args=[token, item.pk]), data)
    event = AuditEvent.objects.get(target_id=str(item.pk), action=AuditEvent.Action.RETURN_SHIPPED)
    assert (event.actor, event.detail["via"], event.detail["employee"]) == (None, "return link", cast.employee.pk)


# --- A return that is no longer open, through the link: the reason, not a bare 400 ---------------


def _courier(item, tracking="JD7"):
    prefix = f"r{item.pk}"
    return {f"{prefix}-method": "courier", f"{prefix}-carrier": "DHL", f"{prefix}-tracking_number": tracking}


def test_a_confirmation_posted_twice_from_a_second_tab_answers_with_the_reason(cast, client, item):
    """Both tabs show the form; the first confirms, the second gets 409 with why, and nothing changes."""
    from portal.testing.assertions import database_snapshot

    token = return_link_token(cast.employee)
    url = reverse("offboarding:return_link_ship", args=[token, item.pk])
    first = client.post(url, _courier(item, "JD7"))
    assert first.status_code == 302
    before = database_snapshot()
    second = client.post(url, _courier(item, "OTHER-1"), follow=False)
    assert second.status_code == 409
    html = second.content.decode()
    assert "LT-1001 was already confirmed as on its way on " in html
    assert "(perhaps in another tab or window); nothing was changed." in html
    assert "see the errors below" not in html
    assert database_snapshot() == before
    item.refresh_from_db()
    assert item.tracking_number == "JD7"


def test_a_link_whose_items_were_all_received_says_so(cast, client, item, it_user):
    from offboarding.flows.returns import hardware_return_receive

    token = return_link_token(cast.employee)
    hardware_return_receive(item=item, acting_user=it_user)
    page = client.get(reverse("offboarding:return_link", args=[token]))
    assert page.status_code == 200
    assert "Everything is back: IT received all 1 item. Thank you" in page.content.decode()

    response = client.post(reverse("offboarding:return_link_ship", args=[token, item.pk]), _courier(item))
    assert response.status_code == 409
    html = response.content.decode()
    assert f"IT received LT-1001 already on {timezone.localdate():%d %b %Y}; there is nothing more to confirm." in html
    assert "see the errors below" not in html
    item.refresh_from_db()
    assert item.status == ReturnStatus.RECEIVED and item.tracking_number == ""


def test_signed_in_a_received_return_answers_with_the_reason_too(cast, client, item, it_user):
    from offboarding.flows.returns import hardware_return_receive

    hardware_return_receive(item=item, acting_user=it_user)
    client.force_login(cast.employee.user)
    response = client.post(reverse("offboarding:return_ship", args=[item.pk]), _courier(item))
    assert response.status_code == 409
    assert "IT received LT-1001 already" in response.content.decode()
