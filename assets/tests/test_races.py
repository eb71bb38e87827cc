"""Races only PostgreSQL can show: check-outs and grants from two transactions at once (`run_at_once`)."""

import threading
import time

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction

from accounts.models import Entitlement
from accounts.services import entitlements as entitlement_services
from accounts.services.entitlements import entitlement_grant
from accounts.tests.factories import ApplicationFactory, EmployeeFactory, UserFactory
from assets import services
from assets.models import AssetCheckout, AssetStatus
from assets.services import asset_check_out
from assets.tests.factories import AssetModelFactory, HardwareAssetFactory
from portal.models import AuditEvent
from portal.testing.concurrency import run_at_once

# --- Concurrency (PostgreSQL) -----------------------------------------------------------

needs_row_locks = pytest.mark.skipif(
    connection.vendor == "sqlite",
    reason="SQLite has no row locks (select_for_update is a no-op) and serialises whole write transactions; "
    "these races are only meaningful on PostgreSQL.",
)


@needs_row_locks
@pytest.mark.django_db(transaction=True)
def test_concurrent_check_outs_of_one_asset_let_exactly_one_win(monkeypatch):
    asset = HardwareAssetFactory(asset_tag="LT-RACE")
    alice = EmployeeFactory(first_name="Alice", last_name="Able")
    bob = EmployeeFactory(first_name="Bob", last_name="Baker")

    # Hold the window between reading the asset's status and writing it open, so a service that
    # did not lock the row would let both threads see "in stock".
    real_lock = services._lock

    def slow_lock(asset):
        locked = real_lock(asset)
        time.sleep(0.3)
        return locked

    monkeypatch.setattr(services, "_lock", slow_lock)

    results = run_at_once(
        lambda: asset_check_out(asset=asset, employee=alice, acting_user=None),
        lambda: asset_check_out(asset=asset, employee=bob, acting_user=None),
    )

    outcomes = sorted(outcome for outcome, _ in results)
    assert outcomes == ["error", "ok"], results
    [(_, checkout)] = [r for r in results if r[0] == "ok"]
    [(_, error)] = [r for r in results if r[0] == "error"]
    assert isinstance(error, ValidationError)
    assert error.messages == [
        f"LT-RACE is assigned (held by {checkout.employee.full_name}); "
        "only an asset in stock or in transit can be checked out."
    ]
    asset.refresh_from_db()
    assert (asset.status, asset.assigned_to_id) == (AssetStatus.ASSIGNED, checkout.employee_id)
    assert AssetCheckout.objects.filter(asset=asset, checked_in_at__isnull=True).count() == 1
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CHECK_OUT).count() == 1


@needs_row_locks
@pytest.mark.django_db(transaction=True)
def test_check_outs_of_two_assets_of_one_model_do_not_wait_for_each_other():
    model = AssetModelFactory()
    first, second = HardwareAssetFactory(model=model), HardwareAssetFactory(model=model)
    alice, bob = EmployeeFactory(), EmployeeFactory()
    first_locked, release = threading.Event(), threading.Event()

    def hold_first_asset():
        with transaction.atomic():
            services._lock(first)
            first_locked.set()
            release.wait(timeout=10)
        return "held"

    def check_out_second():
        assert first_locked.wait(timeout=10)
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = '2s'")
                return asset_check_out(asset=second, employee=bob, acting_user=None)
        finally:
            release.set()

    results = run_at_once(hold_first_asset, check_out_second)

    assert [outcome for outcome, _ in results] == ["ok", "ok"], results
    second.refresh_from_db()
    assert second.assigned_to == bob
    assert alice.hardware.count() == 0


@needs_row_locks
@pytest.mark.django_db(transaction=True)
def test_concurrent_grants_of_one_application_make_one_live_entitlement(monkeypatch):
    alice = EmployeeFactory(first_name="Alice", last_name="Able")
    slack = ApplicationFactory(name="Slack")
    admins = [UserFactory(username="admin-1"), UserFactory(username="admin-2")]

    # Hold the window between "is there a live entitlement?" and the insert, so an unserialised
    # service would have both threads see none.
    real_lookup = entitlement_services._live_entitlement

    def slow_lookup(**kwargs):
        found = real_lookup(**kwargs)
        time.sleep(0.3)
        return found

    monkeypatch.setattr(entitlement_services, "_live_entitlement", slow_lookup)

    results = run_at_once(
        *(
            lambda user=user: entitlement_grant(employee=alice, application=slack, level="user", acting_user=user)
            for user in admins
        )
    )

    assert [outcome for outcome, _ in results] == ["ok", "ok"], results
    [live] = Entitlement.objects.filter(employee=alice, application=slack)
    assert {value.pk for _, value in results} == {live.pk}
    assert AuditEvent.objects.filter(action=AuditEvent.Action.GRANT).count() == 1
    assert live.history.count() == 1
