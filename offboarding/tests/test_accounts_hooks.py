"""offboarding fills the hooks accounts declares (`accounts.hooks`), in `OffboardingConfig.ready()`."""

import pytest
from django.utils.module_loading import import_string

from accounts.hooks import access_request_approved
from accounts.tests.helpers import ask
from offboarding import tasks
from portal import queue


def test_offboarding_connects_its_fulfilment_task_to_access_request_approved():
    assert access_request_approved.receivers == ("offboarding.tasks.access_request_fulfil",)
    assert import_string(access_request_approved.receivers[0]) is tasks.access_request_fulfil


@pytest.mark.django_db
def test_an_approved_request_enqueues_the_fulfilment_once(cast, monkeypatch, django_capture_on_commit_callbacks):
    enqueued = []
    monkeypatch.setattr(queue, "async_task", lambda func, *args, **options: enqueued.append((func, args)))

    with django_capture_on_commit_callbacks(execute=True):
        request = ask(cast, cast.free_app)

    # The emails telling of it travel through the outbox (portal.tasks.outbox_send); one fulfilment.
    fulfilments = [call for call in enqueued if call[0] != "portal.tasks.outbox_send"]
    assert fulfilments == [("offboarding.tasks.access_request_fulfil", (request.pk,))]


def test_offboarding_connects_its_review_task_to_access_review_decided():
    from accounts.hooks import access_review_decided

    assert access_review_decided.receivers == ("offboarding.tasks.access_review_apply",)
    assert import_string(access_review_decided.receivers[0]) is tasks.access_review_apply
