"""The write path for hardware (`assets.services`): check-out and check-in, terms, lost, retired,
reserved and pending return, and deleting an employee who held hardware.

Every change is checked for its effect, its history rows (naming the acting user) and its
audit event; every refusal for its message and for leaving nothing behind (`refused`).
"""

import pytest

from accounts.models import Employee, EmployeeStatus
from accounts.services.employees import employee_delete
from accounts.tests.factories import EmployeeFactory, EntitlementFactory, UserFactory
from assets import services
from assets.models import AssetCheckout, AssetStatus, HardwareAsset
from assets.services import asset_check_in, asset_check_out, asset_mark_lost, asset_retire, checkout_accept_terms
from portal.models import AuditEvent
from portal.testing.assertions import nothing_written, refused


def set_status(asset, status, holder=None):
    HardwareAsset.objects.filter(pk=asset.pk).update(status=status, assigned_to=holder)
    asset.refresh_from_db()


# --- asset_check_out --------------------------------------------------------------------


@pytest.mark.django_db
def test_check_out_assigns_the_asset_and_opens_a_checkout(laptop, alice, admin_user):
    checkout = asset_check_out(asset=laptop, employee=alice, acting_user=admin_user, note="Day one kit")

    laptop.refresh_from_db()
    assert (laptop.status, laptop.assigned_to) == (AssetStatus.ASSIGNED, alice)
    assert (checkout.asset, checkout.employee, checkout.checked_out_by) == (laptop, alice, admin_user)
    assert checkout.checked_in_at is None
    assert checkout.terms_accepted_at is None
    assert checkout.note == "Day one kit"

    latest_asset = laptop.history.first()
    assert (latest_asset.history_type, latest_asset.status, latest_asset.history_user) == (
        "~",
        AssetStatus.ASSIGNED,
        admin_user,
    )
    [checkout_history] = checkout.history.all()
    assert (checkout_history.history_type, checkout_history.history_user) == ("+", admin_user)

    [event] = AuditEvent.objects.all()
    assert (event.action, event.actor) == (AuditEvent.Action.CHECK_OUT, admin_user)
    assert (event.target_type, event.target_id) == ("assets.HardwareAsset", str(laptop.pk))
    assert event.detail == {"employee": alice.pk, "terms_accepted": False}


@pytest.mark.django_db
def test_check_out_with_terms_accepted_records_the_time(laptop, alice, admin_user):
    checkout = asset_check_out(asset=laptop, employee=alice, acting_user=admin_user, terms_accepted=True)

    assert checkout.terms_accepted_at == checkout.checked_out_at
    assert AuditEvent.objects.get().detail["terms_accepted"] is True


@pytest.mark.django_db
def test_check_out_of_an_assigned_asset_is_refused(laptop, alice, bob, admin_user):
    asset_check_out(asset=laptop, employee=alice, acting_user=admin_user)

    # `laptop` is the caller's stale copy (still "in stock"): the service must read the row.
    message = refused(asset_check_out, asset=laptop, employee=bob, acting_user=admin_user)

    assert message == (
        "LT-0001 is assigned (held by Alice Able); only an asset in stock or in transit can be checked out."
    )


@pytest.mark.parametrize(
    ("status", "shown"),
    [(AssetStatus.IN_REPAIR, "in repair"), (AssetStatus.RETIRED, "retired"), (AssetStatus.LOST, "lost")],
)
@pytest.mark.django_db
def test_check_out_of_an_asset_not_in_stock_is_refused(laptop, alice, admin_user, status, shown):
    set_status(laptop, status)

    message = refused(asset_check_out, asset=laptop, employee=alice, acting_user=admin_user)

    assert message == f"LT-0001 is {shown}; only an asset in stock or in transit can be checked out."


@pytest.mark.django_db
def test_check_out_to_a_terminated_employee_is_refused(laptop, admin_user):
    leaver = EmployeeFactory(first_name="Lee", last_name="Leaver", status=EmployeeStatus.TERMINATED)

    message = refused(asset_check_out, asset=laptop, employee=leaver, acting_user=admin_user)

    assert message == "Lee Leaver is terminated; hardware cannot be checked out to them."


@pytest.mark.django_db
def test_check_out_reads_the_employee_status_from_the_database(laptop, alice, admin_user):
    Employee.objects.filter(pk=alice.pk).update(status=EmployeeStatus.TERMINATED)

    message = refused(asset_check_out, asset=laptop, employee=alice, acting_user=admin_user)

    assert message == "Alice Able is terminated; hardware cannot be checked out to them."


@pytest.mark.django_db
def test_check_out_to_a_pre_hire_reserves_the_kit(laptop, admin_user):
    joiner = EmployeeFactory(status=EmployeeStatus.PRE_HIRE)
    asset_check_out(asset=laptop, employee=joiner, acting_user=admin_user)
    laptop.refresh_from_db()
    assert laptop.assigned_to == joiner


@pytest.mark.django_db
def test_check_out_of_an_asset_in_transit_from_the_warehouse_is_allowed(laptop, alice, admin_user):
    set_status(laptop, AssetStatus.IN_TRANSIT)

    asset_check_out(asset=laptop, employee=alice, acting_user=admin_user)

    laptop.refresh_from_db()
    assert laptop.status == AssetStatus.ASSIGNED


@pytest.mark.django_db
def test_check_out_of_an_asset_on_its_way_back_from_a_leaver_is_refused(laptop, alice, bob, admin_user):
    # A leaver shipped it: in transit, no holder, but the leaver's check-out stays open until it arrives.
    asset_check_out(asset=laptop, employee=alice, acting_user=admin_user)
    set_status(laptop, AssetStatus.IN_TRANSIT)

    message = refused(asset_check_out, asset=laptop, employee=bob, acting_user=admin_user)

    assert message == "LT-0001 is still checked out to Alice Able; check it in before checking it out again."


# --- asset_check_in ---------------------------------------------------------------------


@pytest.mark.django_db
def test_check_in_closes_the_checkout_and_returns_the_asset_to_stock(laptop, alice, admin_user):
    checkout = asset_check_out(asset=laptop, employee=alice, acting_user=None)
    clerk = UserFactory(username="clerk")

    asset_check_in(asset=laptop, acting_user=clerk, condition="scratched lid", note="Returned at desk")

    laptop.refresh_from_db()
    checkout.refresh_from_db()
    assert (laptop.status, laptop.assigned_to) == (AssetStatus.IN_STOCK, None)
    assert checkout.checked_in_at is not None
    assert (checkout.checked_in_by, checkout.condition_on_return) == (clerk, "scratched lid")
    assert checkout.note == "Returned at desk"
    assert laptop.history.first().history_user == clerk
    assert checkout.history.first().history_user == clerk
    event = AuditEvent.objects.get(action=AuditEvent.Action.CHECK_IN)
    assert event.actor == clerk
    assert event.detail == {"employee": alice.pk, "condition": "scratched lid", "status": AssetStatus.IN_STOCK}


@pytest.mark.django_db
def test_check_in_of_a_damaged_asset_sends_it_to_repair(laptop, alice, admin_user):
    asset_check_out(asset=laptop, employee=alice, acting_user=admin_user)

    asset_check_in(asset=laptop, acting_user=admin_user, condition="cracked screen", to_status=AssetStatus.IN_REPAIR)

    laptop.refresh_from_db()
    assert (laptop.status, laptop.assigned_to) == (AssetStatus.IN_REPAIR, None)
    assert not AssetCheckout.objects.filter(asset=laptop, checked_in_at__isnull=True).exists()


@pytest.mark.django_db
def test_check_in_of_a_pending_return_asset(laptop, alice, admin_user):
    asset_check_out(asset=laptop, employee=alice, acting_user=admin_user)
    set_status(laptop, AssetStatus.PENDING_RETURN, holder=alice)

    asset_check_in(asset=laptop, acting_user=admin_user)

    laptop.refresh_from_db()
    assert laptop.status == AssetStatus.IN_STOCK


@pytest.mark.django_db
def test_check_in_of_an_asset_arriving_from_a_leaver_closes_their_checkout(laptop, alice, admin_user):
    checkout = asset_check_out(asset=laptop, employee=alice, acting_user=admin_user)
    set_status(laptop, AssetStatus.IN_TRANSIT)

    asset_check_in(asset=laptop, acting_user=admin_user)

    checkout.refresh_from_db()
    assert checkout.checked_in_at is not None
    assert AuditEvent.objects.get(action=AuditEvent.Action.CHECK_IN).detail["employee"] is None


@pytest.mark.django_db
def test_check_in_to_a_status_other_than_stock_or_repair_is_refused(laptop, alice, admin_user):
    asset_check_out(asset=laptop, employee=alice, acting_user=admin_user)

    message = refused(asset_check_in, asset=laptop, acting_user=admin_user, to_status=AssetStatus.RETIRED)

    assert message == "A returned asset goes back in stock or into repair."


@pytest.mark.django_db
def test_check_in_of_an_asset_in_stock_is_refused(laptop, admin_user):
    message = refused(asset_check_in, asset=laptop, acting_user=admin_user)
    assert message == "LT-0001 is in stock, not held by anyone; nothing to check in."


@pytest.mark.django_db
def test_check_in_twice_has_one_effect(laptop, alice, admin_user):
    asset_check_out(asset=laptop, employee=alice, acting_user=admin_user)
    asset_check_in(asset=laptop, acting_user=admin_user)

    refused(asset_check_in, asset=laptop, acting_user=admin_user)

    assert AuditEvent.objects.filter(action=AuditEvent.Action.CHECK_IN).count() == 1


@pytest.mark.django_db
def test_check_in_with_a_condition_longer_than_the_column_is_refused_on_every_database(laptop, alice, admin_user):
    # SQLite would store it and PostgreSQL raise a DataError; the service validates first.
    asset_check_out(asset=laptop, employee=alice, acting_user=admin_user)

    message = refused(asset_check_in, asset=laptop, acting_user=admin_user, condition="x" * 101)

    assert message == "Ensure this value has at most 100 characters (it has 101)."
    laptop.refresh_from_db()
    assert laptop.assigned_to == alice


@pytest.mark.django_db
def test_asset_can_be_checked_out_again_after_check_in(laptop, alice, bob, admin_user):
    asset_check_out(asset=laptop, employee=alice, acting_user=admin_user)
    asset_check_in(asset=laptop, acting_user=admin_user)

    asset_check_out(asset=laptop, employee=bob, acting_user=admin_user)

    assert [(c.employee.last_name, c.checked_in_at is None) for c in laptop.checkouts.order_by("id")] == [
        ("Able", False),
        ("Baker", True),
    ]


# --- asset_mark_lost --------------------------------------------------------------------


@pytest.mark.django_db
def test_mark_lost_closes_the_checkout_and_keeps_the_holder_in_the_record(laptop, alice, admin_user):
    checkout = asset_check_out(asset=laptop, employee=alice, acting_user=admin_user)

    asset_mark_lost(asset=laptop, acting_user=admin_user, note="Left on a train")

    laptop.refresh_from_db()
    checkout.refresh_from_db()
    assert (laptop.status, laptop.assigned_to) == (AssetStatus.LOST, None)
    assert (checkout.condition_on_return, checkout.note) == ("lost", "Left on a train")
    assert checkout.checked_in_at is not None
    assert laptop.history.first().history_user == admin_user
    event = AuditEvent.objects.get(action=AuditEvent.Action.ASSET_STATUS)
    assert event.detail == {
        "from": AssetStatus.ASSIGNED,
        "to": AssetStatus.LOST,
        "employee": alice.pk,
        "note": "Left on a train",
    }


@pytest.mark.django_db
def test_mark_lost_of_an_asset_in_stock(laptop, admin_user):
    asset_mark_lost(asset=laptop, acting_user=admin_user)

    laptop.refresh_from_db()
    assert laptop.status == AssetStatus.LOST
    assert not laptop.checkouts.exists()


@pytest.mark.parametrize(("status", "shown"), [(AssetStatus.LOST, "lost"), (AssetStatus.RETIRED, "retired")])
@pytest.mark.django_db
def test_mark_lost_twice_or_after_retirement_is_refused(laptop, admin_user, status, shown):
    set_status(laptop, status)
    assert refused(asset_mark_lost, asset=laptop, acting_user=admin_user) == f"LT-0001 is already {shown}."


# --- asset_retire -----------------------------------------------------------------------


@pytest.mark.parametrize("status", [AssetStatus.IN_STOCK, AssetStatus.IN_REPAIR, AssetStatus.LOST])
@pytest.mark.django_db
def test_retire_an_asset_nobody_holds(laptop, admin_user, status):
    set_status(laptop, status)

    asset_retire(asset=laptop, acting_user=admin_user, note="End of life")

    laptop.refresh_from_db()
    assert laptop.status == AssetStatus.RETIRED
    assert laptop.history.first().history_user == admin_user
    event = AuditEvent.objects.get()
    assert (event.action, event.actor) == (AuditEvent.Action.ASSET_STATUS, admin_user)
    assert event.detail == {"from": status, "to": AssetStatus.RETIRED, "note": "End of life"}


@pytest.mark.django_db
def test_retire_is_refused_while_someone_holds_the_asset(laptop, alice, admin_user):
    asset_check_out(asset=laptop, employee=alice, acting_user=admin_user)

    message = refused(asset_retire, asset=laptop, acting_user=admin_user)

    assert message == "LT-0001 is held by Alice Able; check it in before retiring it."


@pytest.mark.django_db
def test_retire_is_refused_while_the_asset_is_in_transit(laptop, alice, admin_user):
    asset_check_out(asset=laptop, employee=alice, acting_user=admin_user)
    set_status(laptop, AssetStatus.IN_TRANSIT)

    message = refused(asset_retire, asset=laptop, acting_user=admin_user)

    assert message == (
        "LT-0001 is in transit; only an asset in stock, in repair or lost can be retired. Check it in first."
    )


@pytest.mark.django_db
def test_retire_twice_is_refused(laptop, admin_user):
    asset_retire(asset=laptop, acting_user=admin_user)
    assert refused(asset_retire, asset=laptop, acting_user=admin_user) == "LT-0001 is already retired."


# --- checkout_accept_terms --------------------------------------------------------------


@pytest.mark.django_db
def test_accept_terms_records_the_time_with_history_and_audit(laptop, alice):
    checkout = asset_check_out(asset=laptop, employee=alice, acting_user=None)
    alice_user = UserFactory(username="alice")

    result = checkout_accept_terms(checkout=checkout, acting_user=alice_user)

    assert result.terms_accepted_at is not None
    assert checkout.history.first().history_user == alice_user
    event = AuditEvent.objects.get(action=AuditEvent.Action.TERMS)
    assert (event.actor, event.target_id) == (alice_user, str(laptop.pk))
    assert event.detail == {"checkout": checkout.pk, "terms_version": "2026-01"}


@pytest.mark.django_db
def test_accept_terms_twice_records_one_event(laptop, alice):
    checkout = asset_check_out(asset=laptop, employee=alice, acting_user=None)
    first = checkout_accept_terms(checkout=checkout, acting_user=None)
    with nothing_written():
        second = checkout_accept_terms(checkout=checkout, acting_user=None)

    assert second.terms_accepted_at == first.terms_accepted_at
    assert AuditEvent.objects.filter(action=AuditEvent.Action.TERMS).count() == 1


@pytest.mark.django_db
def test_accept_terms_after_return_is_refused(laptop, alice, admin_user):
    checkout = asset_check_out(asset=laptop, employee=alice, acting_user=admin_user)
    asset_check_in(asset=laptop, acting_user=admin_user)

    message = refused(checkout_accept_terms, checkout=checkout, acting_user=admin_user)

    assert message == "This asset has been returned; there are no terms to accept."


# --- employee_delete and hardware (accounts does not know assets, so the test lives here) -----


@pytest.mark.django_db
def test_employee_delete_is_refused_naming_the_hardware_they_hold(laptop, alice, admin_user):
    asset_check_out(asset=laptop, employee=alice, acting_user=admin_user)
    EntitlementFactory(employee=alice)

    message = refused(employee_delete, employee=alice, acting_user=admin_user)

    assert message == (
        "Alice Able cannot be deleted: these records still refer to them: 1 asset checkout, 1 entitlement, "
        "1 hardware asset. Set their status to terminated instead, so the audit trail stays whole."
    )


@pytest.mark.django_db
def test_employee_delete_is_refused_for_hardware_held_in_the_past(laptop, alice, admin_user):
    asset_check_out(asset=laptop, employee=alice, acting_user=admin_user)
    asset_check_in(asset=laptop, acting_user=admin_user)

    message = refused(employee_delete, employee=alice, acting_user=admin_user)

    assert "these records still refer to them: 1 asset checkout." in message


# --- asset_reserve, asset_release_reservation, asset_mark_pending_return ---------------------


@pytest.mark.django_db
def test_reserve_sets_an_in_stock_asset_aside_with_history_and_audit(laptop, alice, admin_user):
    services.asset_reserve(asset=laptop, employee=alice, acting_user=admin_user, detail={"run": 7})

    laptop.refresh_from_db()
    assert (laptop.status, laptop.reserved_for, laptop.assigned_to) == (AssetStatus.IN_STOCK, alice, None)
    assert laptop.history.first().history_user == admin_user
    event = AuditEvent.objects.get(action=AuditEvent.Action.ASSET_RESERVED)
    assert event.actor == admin_user
    assert event.detail == {"run": 7, "employee": alice.pk}


@pytest.mark.django_db
def test_reserve_is_refused_for_an_asset_not_in_stock(laptop, alice, bob, admin_user):
    asset_check_out(asset=laptop, employee=alice, acting_user=admin_user)

    message = refused(services.asset_reserve, asset=laptop, employee=bob, acting_user=admin_user)

    assert message == "LT-0001 is assigned; only an asset in stock can be reserved."


@pytest.mark.django_db
def test_reserve_is_refused_for_an_asset_reserved_already(laptop, alice, bob, admin_user):
    services.asset_reserve(asset=laptop, employee=alice, acting_user=admin_user)

    assert (
        refused(services.asset_reserve, asset=laptop, employee=bob, acting_user=admin_user)
        == "LT-0001 is already reserved for Alice Able."
    )
    assert (
        refused(services.asset_reserve, asset=laptop, employee=alice, acting_user=admin_user)
        == "LT-0001 is already reserved for them."
    )


@pytest.mark.django_db
def test_reserve_is_refused_for_a_terminated_employee(laptop, alice, admin_user):
    Employee.objects.filter(pk=alice.pk).update(status=EmployeeStatus.TERMINATED)

    message = refused(services.asset_reserve, asset=laptop, employee=alice, acting_user=admin_user)

    assert message == "Alice Able is terminated; no hardware can be reserved for them."
    laptop.refresh_from_db()
    assert laptop.reserved_for is None


@pytest.mark.django_db
def test_a_reserved_asset_is_checked_out_to_its_joiner_only(laptop, alice, bob, admin_user):
    services.asset_reserve(asset=laptop, employee=alice, acting_user=admin_user)

    assert "reserved for Alice Able" in refused(asset_check_out, asset=laptop, employee=bob, acting_user=admin_user)
    asset_check_out(asset=laptop, employee=alice, acting_user=admin_user)
    laptop.refresh_from_db()
    assert (laptop.status, laptop.reserved_for) == (AssetStatus.ASSIGNED, None)


@pytest.mark.django_db
def test_release_puts_a_reserved_asset_back_in_free_stock(laptop, alice, admin_user):
    services.asset_reserve(asset=laptop, employee=alice, acting_user=admin_user)

    services.asset_release_reservation(asset=laptop, employee=alice, acting_user=admin_user, detail={"run": 3})

    laptop.refresh_from_db()
    assert (laptop.status, laptop.reserved_for) == (AssetStatus.IN_STOCK, None)
    assert laptop.history.first().history_user == admin_user
    event = AuditEvent.objects.get(action=AuditEvent.Action.ASSET_RESERVATION_RELEASED)
    assert event.detail == {"run": 3, "employee": alice.pk}


@pytest.mark.django_db
def test_release_is_refused_when_nothing_or_someone_else_holds_the_reservation(laptop, alice, bob, admin_user):
    assert (
        refused(services.asset_release_reservation, asset=laptop, acting_user=admin_user)
        == "LT-0001 is not reserved for anyone; nothing to release."
    )
    services.asset_reserve(asset=laptop, employee=alice, acting_user=admin_user)
    assert (
        refused(services.asset_release_reservation, asset=laptop, employee=bob, acting_user=admin_user)
        == "LT-0001 is reserved for Alice Able, not for Bob Baker."
    )
    laptop.refresh_from_db()
    assert laptop.reserved_for == alice


@pytest.mark.django_db
def test_mark_pending_return_keeps_the_holder_and_the_open_checkout(laptop, alice, admin_user):
    checkout = asset_check_out(asset=laptop, employee=alice, acting_user=admin_user)

    services.asset_mark_pending_return(asset=laptop, acting_user=admin_user, detail={"run": 9})

    laptop.refresh_from_db()
    checkout.refresh_from_db()
    assert (laptop.status, laptop.assigned_to) == (AssetStatus.PENDING_RETURN, alice)
    assert checkout.checked_in_at is None
    assert laptop.history.first().history_user == admin_user
    event = AuditEvent.objects.get(action=AuditEvent.Action.ASSET_STATUS)
    assert event.actor == admin_user
    assert event.detail == {"run": 9, "from": "assigned", "to": "pending_return", "employee": alice.pk}
    # Checked in later as usual.
    asset_check_in(asset=laptop, acting_user=admin_user)
    laptop.refresh_from_db()
    assert (laptop.status, laptop.assigned_to) == (AssetStatus.IN_STOCK, None)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "shown"),
    [(AssetStatus.IN_STOCK, "in stock"), (AssetStatus.PENDING_RETURN, "pending return"), (AssetStatus.LOST, "lost")],
)
def test_mark_pending_return_is_refused_unless_assigned(laptop, alice, admin_user, status, shown):
    set_status(laptop, status, holder=alice if status == AssetStatus.PENDING_RETURN else None)

    message = refused(services.asset_mark_pending_return, asset=laptop, acting_user=admin_user)

    assert message == f"LT-0001 is {shown}; only an assigned asset can be marked pending return."
