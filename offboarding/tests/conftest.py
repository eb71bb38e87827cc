"""Fixtures shared by the offboarding tests: running what a service queued, an IT user, test actions,
a laptop held by the self-service cast's employee and a return asked for it, the migrations' schedules."""

import importlib

import pytest

from accounts.tests.factories import UserFactory
from assets.services import asset_check_out
from assets.tests.factories import HardwareAssetFactory
from offboarding.flows.returns import hardware_return_request
from offboarding.tests.actions import register_test_actions, reset_test_actions

register_test_actions()


@pytest.fixture(autouse=True)
def _reset_test_actions():
    reset_test_actions()
    yield


@pytest.fixture
def settle(django_capture_on_commit_callbacks):
    """Call a service and run everything it queued (the queue is in sync mode), to the end."""

    def call(func, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return func(**kwargs)

    return call


@pytest.fixture
def it_user(db):
    return UserFactory(username="it-staff")


SCHEDULE_MIGRATIONS = ("0002_sweeper_schedule", "0004_reminder_schedule", "0005_purge_schedule", "0006_access_schedule")


@pytest.fixture
def migration_schedules(db):
    """The queue schedules the offboarding migrations create, made by the migrations' own functions.

    A `transaction=True` test flushes the tables, migration data included, so a test that reads
    these rows recreates them first (each function is idempotent) instead of depending on order.
    """
    from django.apps import apps

    for name in SCHEDULE_MIGRATIONS:
        importlib.import_module(f"offboarding.migrations.{name}").create_schedule(apps, None)


@pytest.fixture
def laptop(cast):
    asset = HardwareAssetFactory(asset_tag="LT-1001")
    asset_check_out(asset=asset, employee=cast.employee, acting_user=None, terms_accepted=True)
    return asset


@pytest.fixture
def item(laptop, mailoutbox):
    return hardware_return_request(asset=laptop, acting_user=None)
