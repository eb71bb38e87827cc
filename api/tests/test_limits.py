"""Limits an automation script meets: a rate per token (429 with Retry-After, counted apart per token), and
two requests sent at once with the same `Idempotency-Key` writing once."""

import threading
import time

import pytest
from django.core.cache import cache

from accounts.models import AccessRequest
from accounts.services import access_requests
from api.models import IdempotencyKey
from api.tests.conftest import ApiClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def fresh_counts():
    cache.clear()
    yield
    cache.clear()


def test_a_token_over_its_rate_is_refused_with_429_and_retry_after(seeded, api, settings, fresh_counts):
    settings.PORTAL_API_REQUESTS_PER_MINUTE = 3
    answers = [api.employee.get("/api/v1/employees/").status_code for _ in range(3)]
    assert answers == [200, 200, 200]
    refused = api.employee.get("/api/v1/employees/")
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert "More than 3 requests a minute with this token" in refused.json()["detail"]
    # Another token has its own count; a refused POST writes nothing.
    assert api.teammate.get("/api/v1/employees/").status_code == 200
    before = AccessRequest.objects.count()
    body = {"application": seeded.free_app.pk, "level": "user", "justification": "Chat."}
    assert api.employee.post("/api/v1/access-requests/", body, key="k").status_code == 429
    assert AccessRequest.objects.count() == before
    assert not IdempotencyKey.objects.exists()


def test_calls_without_a_token_are_counted_by_address(seeded, api, settings, fresh_counts):
    """An unknown address under /api/v1/ needs no token: the count is the caller's address."""
    settings.PORTAL_API_REQUESTS_PER_MINUTE = 2
    assert [api.anonymous.get("/api/v1/no-such-thing/").status_code for _ in range(2)] == [404, 404]
    assert api.anonymous.get("/api/v1/no-such-thing/").status_code == 429


@pytest.mark.django_db(transaction=True)
def test_two_requests_at_once_with_one_key_write_once_and_answer_alike(seeded, api, monkeypatch):
    """The first request is held inside the service until the second has sent its key; the second must
    wait for the first to commit and replay its answer, never create a second access request."""
    secret = api.employee.secret
    inside, release = threading.Event(), threading.Event()
    create = access_requests.access_request_create

    def held_create(**kwargs):
        if not inside.is_set():
            inside.set()
            release.wait(10)
        return create(**kwargs)

    monkeypatch.setattr(access_requests, "access_request_create", held_create)
    body = {"application": seeded.free_app.pk, "level": "user", "justification": "Team chat."}
    answers = {}

    def send(name):
        answers[name] = ApiClient(secret).post("/api/v1/access-requests/", body, key="same-key")

    first = threading.Thread(target=send, args=("first",))
    first.start()
    assert inside.wait(10), "the first request never reached the service"
    second = threading.Thread(target=send, args=("second",))
    second.start()
    time.sleep(0.5)  # lets the second request reach its key insert and block on the first's transaction
    release.set()
    first.join(30)
    second.join(30)

    assert AccessRequest.objects.filter(employee=seeded.employee, application=seeded.free_app).count() == 1
    assert answers["first"].status_code == 201
    assert answers["second"].status_code == 201, answers["second"].content
    assert answers["second"]["Idempotent-Replayed"] == "true"
    assert answers["second"].json() == answers["first"].json()
    assert IdempotencyKey.objects.get().response_status == 201
