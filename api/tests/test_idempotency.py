"""`Idempotency-Key` on POST: the same key and body replays the first answer and writes nothing twice; the
same key with another body is refused (422); a refused request keeps no key; keys are per user."""

import pytest

from accounts.models import AccessRequest
from api.models import IdempotencyKey
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db


def _body(cast, **extra):
    return {"application": cast.free_app.pk, "level": "user", "justification": "Team chat.", **extra}


def test_the_same_key_and_body_replays_the_first_answer_and_writes_once(seeded, api):
    first = api.employee.post("/api/v1/access-requests/", _body(seeded), key="req-1")
    assert first.status_code == 201
    events = AuditEvent.objects.count()
    again = api.employee.post("/api/v1/access-requests/", _body(seeded), key="req-1")
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert AccessRequest.objects.filter(employee=seeded.employee, application=seeded.free_app).count() == 1
    assert AuditEvent.objects.count() == events
    assert IdempotencyKey.objects.get().response_status == 201


def test_without_a_key_a_second_post_is_a_second_request(seeded, api):
    body = _body(seeded, application=seeded.owner_app.pk)  # Figma: waits for its owner
    assert api.teammate.post("/api/v1/access-requests/", body).status_code == 201
    second = api.teammate.post("/api/v1/access-requests/", body)
    assert second.status_code == 400
    assert "already have a pending request" in second.json()["detail"]


def test_the_same_key_with_another_body_is_refused_with_422(seeded, api):
    assert api.employee.post("/api/v1/access-requests/", _body(seeded), key="k").status_code == 201
    other = api.employee.post("/api/v1/access-requests/", _body(seeded, justification="Other."), key="k")
    assert other.status_code == 422
    assert "another request" in other.json()["detail"]
    elsewhere = api.employee.post(f"/api/v1/tasks/{seeded.employee.checklist_tasks.get().pk}/complete/", {}, key="k")
    assert elsewhere.status_code == 422
    assert seeded.employee.checklist_tasks.get().status == "pending"


def test_a_refused_request_keeps_no_key_so_it_can_be_corrected(seeded, api):
    bad = api.employee.post("/api/v1/access-requests/", _body(seeded, level="root"), key="fix-me")
    assert bad.status_code == 400
    assert not IdempotencyKey.objects.exists()
    good = api.employee.post("/api/v1/access-requests/", _body(seeded), key="fix-me")
    assert good.status_code == 201


def test_keys_are_per_user(seeded, api):
    mine = api.employee.post("/api/v1/access-requests/", _body(seeded), key="shared")
    theirs = api.teammate.post("/api/v1/access-requests/", _body(seeded), key="shared")
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["employee"] != theirs.json()["employee"]


@pytest.mark.parametrize("key", ["", "   ", "x" * 256, "tab\there"])
def test_a_bad_key_is_refused_with_400_and_nothing_written(seeded, api, key):
    before = AccessRequest.objects.count()
    response = api.employee.post("/api/v1/access-requests/", _body(seeded), key=key)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["detail"]
    assert AccessRequest.objects.count() == before


def test_an_action_replays_too(seeded, api):
    task = seeded.employee.checklist_tasks.get()
    path = f"/api/v1/tasks/{task.pk}/complete/"
    first = api.employee.post(path, {"note": "Read."}, key="done-1")
    assert first.status_code == 200
    again = api.employee.post(path, {"note": "Read."}, key="done-1")
    assert (again.status_code, again.json()) == (200, first.json())
    assert task.history.count() == 2  # created, completed: not completed twice
