"""The hardware admin: status and holder change only through actions that call the services."""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from accounts.models import EmployeeStatus
from accounts.tests.factories import EmployeeFactory, EntitlementFactory, LocationFactory
from assets.models import AssetCheckout, AssetStatus, HardwareAsset
from assets.services import asset_check_out
from assets.tests.factories import AssetModelFactory, HardwareAssetFactory, LicenseFactory
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:assets_hardwareasset_changelist")


def texts(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def run_action(client, action, assets, **form):
    """Post the action as the changelist does, then its form with "apply", as the intermediate page does."""
    selected = [a.pk for a in assets]
    first = client.post(CHANGELIST, {"action": action, "_selected_action": selected, "index": 0})
    assert first.status_code == 200
    assert first.templates[0].name == "admin/portal/action_form.html"
    return client.post(CHANGELIST, {"action": action, "_selected_action": selected, "apply": "1", **form})


@pytest.fixture
def ada(db):
    return EmployeeFactory(first_name="Ada", last_name="Lovelace")


@pytest.fixture
def held(ada, it_admin):
    asset = HardwareAssetFactory(asset_tag="LAP-1")
    asset_check_out(asset=asset, employee=ada, acting_user=it_admin)
    asset.refresh_from_db()
    return asset


# --- Check out ----------------------------------------------------------------------------------


def test_check_out_happy_path(client, helpdesk, ada):
    laptop, monitor = HardwareAssetFactory(asset_tag="LAP-2"), HardwareAssetFactory(asset_tag="MON-1")
    client.force_login(helpdesk)
    response = run_action(client, "check_out", [laptop, monitor], employee=ada.pk, terms_accepted="on", note="Day 1")
    assert response.status_code == 302
    for asset in (laptop, monitor):
        asset.refresh_from_db()
        assert (asset.status, asset.assigned_to) == (AssetStatus.ASSIGNED, ada)
        checkout = AssetCheckout.objects.get(asset=asset)
        assert checkout.checked_out_by == helpdesk and checkout.terms_accepted_at is not None
        assert asset.history.first().history_user == helpdesk
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CHECK_OUT, actor=helpdesk).count() == 2
    assert texts(response) == ["Checked out: LAP-2, MON-1."]


def test_check_out_of_held_asset_is_refused_per_asset(client, helpdesk, held, ada):
    other = EmployeeFactory()
    spare = HardwareAssetFactory(asset_tag="LAP-3")
    client.force_login(helpdesk)
    response = run_action(client, "check_out", [held, spare], employee=other.pk)
    held.refresh_from_db()
    assert held.assigned_to == ada
    assert AssetCheckout.objects.filter(asset=held).count() == 1
    messages = texts(response)
    assert "Checked out: LAP-3." in messages
    assert any(m.startswith("LAP-1: ") and "held by Ada Lovelace" in m for m in messages)


def test_check_out_form_needs_an_employee_and_offers_no_terminated_ones(client, helpdesk):
    gone = EmployeeFactory(status=EmployeeStatus.TERMINATED, last_name="Gone")
    asset = HardwareAssetFactory()
    client.force_login(helpdesk)
    response = client.post(
        CHANGELIST, {"action": "check_out", "_selected_action": [asset.pk], "apply": "1", "employee": gone.pk}
    )
    assert response.status_code == 200
    assert "employee" in response.context["form"].errors
    asset.refresh_from_db()
    assert asset.status == AssetStatus.IN_STOCK
    picker = client.get(
        reverse("admin:autocomplete"),
        {"term": "Gone", "app_label": "assets", "model_name": "hardwareasset", "field_name": "assigned_to"},
    )
    assert picker.json()["results"] == []


# --- Check in, lost, retire --------------------------------------------------------------------------


def test_check_in_into_repair(client, helpdesk, held):
    client.force_login(helpdesk)
    response = run_action(client, "check_in", [held], condition="cracked screen", to_status="in_repair")
    held.refresh_from_db()
    assert (held.status, held.assigned_to) == (AssetStatus.IN_REPAIR, None)
    checkout = AssetCheckout.objects.get(asset=held)
    assert checkout.condition_on_return == "cracked screen" and checkout.checked_in_by == helpdesk
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CHECK_IN, actor=helpdesk).exists()
    assert texts(response) == ["Checked in: LAP-1."]


def test_check_in_of_asset_in_stock_is_refused(client, helpdesk):
    asset = HardwareAssetFactory(asset_tag="STOCK-1")
    client.force_login(helpdesk)
    response = run_action(client, "check_in", [asset], condition="good", to_status="in_stock")
    (message,) = texts(response)
    assert message.startswith("STOCK-1: ") and "nothing to check in" in message
    assert not AuditEvent.objects.exists()


def test_mark_lost_needs_a_note_then_closes_the_checkout(client, helpdesk, held):
    client.force_login(helpdesk)
    response = client.post(CHANGELIST, {"action": "mark_lost", "_selected_action": [held.pk], "apply": "1"})
    assert response.status_code == 200 and "note" in response.context["form"].errors
    response = run_action(client, "mark_lost", [held], note="Left on a train.")
    held.refresh_from_db()
    assert (held.status, held.assigned_to) == (AssetStatus.LOST, None)
    assert AssetCheckout.objects.get(asset=held).checked_in_at is not None
    assert AuditEvent.objects.get(action=AuditEvent.Action.ASSET_STATUS).detail["to"] == "lost"
    assert texts(response) == ["Marked lost: LAP-1."]


def test_mark_lost_twice_is_refused(client, helpdesk):
    asset = HardwareAssetFactory(asset_tag="L-9", status=AssetStatus.LOST)
    client.force_login(helpdesk)
    (message,) = texts(run_action(client, "mark_lost", [asset], note="again"))
    assert message == "L-9: L-9 is already lost."


def test_retire_in_stock_asset(client, helpdesk):
    asset = HardwareAssetFactory(asset_tag="OLD-1")
    client.force_login(helpdesk)
    response = run_action(client, "retire", [asset], note="End of life.")
    asset.refresh_from_db()
    assert asset.status == AssetStatus.RETIRED
    assert texts(response) == ["Retired: OLD-1."]


def test_retire_held_asset_is_refused(client, helpdesk, held):
    client.force_login(helpdesk)
    (message,) = texts(run_action(client, "retire", [held]))
    assert message.startswith("LAP-1: ") and "check it in before retiring" in message
    held.refresh_from_db()
    assert held.status == AssetStatus.ASSIGNED


def test_actions_are_offered_only_with_change_permission(client, auditor, helpdesk):
    HardwareAssetFactory()
    client.force_login(helpdesk)
    choices = dict(client.get(CHANGELIST).context["action_form"].fields["action"].choices)
    assert {"check_out", "check_in", "mark_lost", "retire"} <= set(choices)
    assert "delete_selected" not in choices
    client.force_login(auditor)
    assert client.get(CHANGELIST).context["action_form"] is None


# --- The asset form ------------------------------------------------------------------------------------


def test_new_asset_starts_in_stock_and_status_and_holder_are_read_only(client, it_admin, ada):
    model = AssetModelFactory()
    client.force_login(it_admin)
    response = client.post(
        reverse("admin:assets_hardwareasset_add"),
        {
            "asset_tag": "NEW-1",
            "serial": "SN-NEW-1",
            "model": model.pk,
            "status": "assigned",  # ignored: not a form field
            "assigned_to": ada.pk,  # ignored
            "location": LocationFactory().pk,
            "purchase_date": "2026-01-10",
            "purchase_cost": "999.00",
            "warranty_end": "2029-01-10",
            "notes": "",
            "checkouts-TOTAL_FORMS": "0",
            "checkouts-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    asset = HardwareAsset.objects.get(asset_tag="NEW-1")
    assert (asset.status, asset.assigned_to) == (AssetStatus.IN_STOCK, None)
    assert asset.history.get().history_user == it_admin

    form = client.get(reverse("admin:assets_hardwareasset_change", args=[asset.pk])).context["adminform"].form
    assert "status" not in form.fields and "assigned_to" not in form.fields


def test_asset_page_shows_checkout_log_read_only(client, helpdesk, held):
    client.force_login(helpdesk)
    response = client.get(reverse("admin:assets_hardwareasset_change", args=[held.pk]))
    (log,) = response.context["inline_admin_formsets"]
    assert not log.has_add_permission and not log.has_change_permission and not log.has_delete_permission
    assert "Ada Lovelace" in response.content.decode()


def test_reverting_from_history_is_refused(client, it_admin, held):
    """A revert would restore an old holder/status outside the services."""
    client.force_login(it_admin)
    first = held.history.earliest()
    url = reverse("admin:assets_hardwareasset_simple_history", args=[held.pk, first.history_id])
    assert client.get(url).status_code == 200
    assert client.post(url, {"asset_tag": held.asset_tag}).status_code == 403
    held.refresh_from_db()
    assert held.status == AssetStatus.ASSIGNED


@pytest.mark.parametrize(
    "term",
    ["lovelace", "Ada Lovelace", "{number}", "LAP-1", "lap-1", "{serial}", "LAP", "Nobody"],
    ids=str,
)
def test_hardware_search_by_holder_tag_or_serial(client, helpdesk, held, term):
    HardwareAssetFactory(asset_tag="SPARE-1")
    client.force_login(helpdesk)
    term = term.format(number=held.assigned_to.employee_number, serial=held.serial)
    expected = [] if term in ("LAP", "Nobody") else [held]  # tags and serials match in full
    assert list(client.get(CHANGELIST, {"q": term}).context["cl"].result_list) == expected


def test_hardware_filter_by_status(client, helpdesk, held):
    HardwareAssetFactory(asset_tag="SPARE-1")
    client.force_login(helpdesk)
    assert [a.asset_tag for a in client.get(CHANGELIST, {"status__exact": "in_stock"}).context["cl"].result_list] == [
        "SPARE-1"
    ]


# --- Licenses ---------------------------------------------------------------------------------------------


def test_license_list_shows_seats_used_from_active_entitlements(client, auditor):
    license_ = LicenseFactory(seats_purchased=10)
    EntitlementFactory.create_batch(3, application=license_.application)
    client.force_login(auditor)
    response = client.get(reverse("admin:assets_license_changelist"))
    (row,) = response.context["cl"].result_list
    assert row.seats_used == 3
    html = response.content.decode()
    assert '<td class="field-seats_used">3</td>' in html
    assert '<td class="field-seats_free">7</td>' in html
    assert '<td class="field-annual_cost">125.00</td>' in html
