"""Fixtures shared by the offboarding tests: running what a service queued, an IT user, test actions."""

import pytest

from accounts.tests.factories import UserFactory
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
