"""Hooks accounts declares for higher apps (`accounts.hooks`): enqueued once on commit, ids only;
never silently dropped when nobody is connected."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from accounts.hooks import Hook, access_request_approved
from accounts.models import AccessRequestStatus
from accounts.tests.helpers import ask
from portal import queue
from portal.testing.assertions import refused_and_nothing_written


@pytest.fixture
def enqueued(monkeypatch):
    """The (task, args) pairs handed to django-q2, in order."""
    calls = []
    monkeypatch.setattr(queue, "async_task", lambda func, *args, **options: calls.append((func, args)))
    return calls


@pytest.mark.django_db
def test_a_connected_hook_enqueues_its_task_once_on_commit_with_the_id(enqueued, django_capture_on_commit_callbacks):
    hook = Hook("something_happened")
    hook.connect("higher.tasks.follow_up")
    hook.connect("higher.tasks.follow_up")  # a second ready() connects nothing more

    with django_capture_on_commit_callbacks(execute=True):
        hook.fire(42)
        assert enqueued == []  # not before the commit

    assert enqueued == [("higher.tasks.follow_up", (42,))]


@pytest.mark.django_db
def test_a_hook_fired_in_a_transaction_that_rolls_back_enqueues_nothing(enqueued, django_capture_on_commit_callbacks):
    hook = Hook("something_happened")
    hook.connect("higher.tasks.follow_up")

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        hook.fire(42)
        raise RuntimeError("the caller's work failed")

    assert callbacks == []
    assert enqueued == []


def test_a_hook_nobody_connected_refuses_to_fire_naming_itself():
    with pytest.raises(ImproperlyConfigured, match="'something_happened' hook"):
        Hook("something_happened").fire(42)


def test_only_a_dotted_task_path_may_be_connected():
    with pytest.raises(TypeError, match="dotted path"):
        Hook("something_happened").connect(print)


def test_an_approved_request_fires_the_access_request_approved_hook(
    cast, enqueued, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(access_request_approved, "_receivers", ["higher.tasks.fulfil"])

    with django_capture_on_commit_callbacks(execute=True):
        request = ask(cast, cast.free_app)  # no approval needed: approved at once

    assert request.status == AccessRequestStatus.APPROVED
    # The emails telling of it travel through the outbox (portal.tasks.outbox_send); one fulfilment.
    assert [call for call in enqueued if call[0] != "portal.tasks.outbox_send"] == [
        ("higher.tasks.fulfil", (request.pk,))
    ]


def test_an_approval_with_nobody_to_fulfil_it_fails_loudly_and_writes_nothing(cast, enqueued, monkeypatch):
    monkeypatch.setattr(access_request_approved, "_receivers", [])

    with refused_and_nothing_written(ImproperlyConfigured, match="access_request_approved"):
        ask(cast, cast.free_app)

    assert enqueued == []


def test_a_sync_hook_calls_its_receiver_at_once_and_returns_its_result():
    from accounts.hooks import SyncHook

    hook = SyncHook("joined")
    with pytest.raises(ImproperlyConfigured, match="'joined' hook"):
        hook.fire(employee=1)
    hook.connect(lambda **kw: ("run", kw))
    assert hook.fire(employee=1) == ("run", {"employee": 1})


def test_the_lifecycle_connects_the_identity_provider_hooks():
    from accounts.hooks import employee_joined, employee_left_now, employee_moved

    assert all(h.receiver is not None for h in (employee_joined, employee_moved, employee_left_now))
