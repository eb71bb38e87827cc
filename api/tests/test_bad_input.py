"""Junk answers 400 (or 404 for an id), in JSON with a plain-words `detail`, and writes nothing; never a 5xx."""

import pytest

from accounts.models import AccessRequest
from api.models import IdempotencyKey

pytestmark = pytest.mark.django_db


def _raw_post(api_client, path, raw: bytes, content_type="application/json"):
    return api_client.client.post(
        path, raw, content_type=content_type, headers={"Authorization": f"Bearer {api_client.secret}"}
    )


@pytest.mark.parametrize(
    "raw",
    [
        b'{"application": 1, "level": "read", "justification": "\\ud800"}',  # half a surrogate pair
        b'{"application": 1, "level": "read", "justification": "a\\u0000b"}',  # NUL
        b"[" * 5000 + b"]" * 5000,  # nested deeper than the parser recurses
        b"{not json",
        b'"just a string"',
    ],
)
def test_a_body_no_column_can_hold_is_refused_with_400(seeded, api, raw):
    before = AccessRequest.objects.count()
    response = _raw_post(api.employee, "/api/v1/access-requests/", raw)
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"]
    assert AccessRequest.objects.count() == before


def test_a_lone_surrogate_with_an_idempotency_key_is_a_400_not_a_500(seeded, api):
    task = seeded.employee.checklist_tasks.get()
    response = api.employee.client.post(
        f"/api/v1/tasks/{task.pk}/complete/",
        b'{"note": "\\udc5a"}',
        content_type="application/json",
        headers={"Authorization": f"Bearer {api.employee.secret}", "Idempotency-Key": "k-1"},
    )
    assert response.status_code == 400
    assert not IdempotencyKey.objects.exists()


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/employees/abc/",
        "/api/v1/employees/1.5/",
        "/api/v1/employees/-1/",
        "/api/v1/employees/0/",
        "/api/v1/employees/99999999999999999999999999/",
        "/api/v1/tasks/%20/",
        "/api/v1/no-such-thing/",
        "/api/v1/employees/1/no-such-action/",
    ],
)
def test_a_junk_or_unknown_address_answers_a_json_404(seeded, api, path):
    response = api.it_admin.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"department": "x"}, "department"),
        ({"department": "99999999999999999999999"}, "department"),
        ({"status": "retired"}, "status"),
        ({"page": "0"}, "page"),
        ({"page": "abc"}, "page"),
        ({"page": "99"}, "page"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "100000"}, "page_size"),
    ],
)
def test_a_junk_filter_or_page_answers_400_naming_it(seeded, api, query, field):
    response = api.it_admin.get("/api/v1/employees/", **query)
    assert response.status_code == 400, response.content
    body = response.json()
    assert field in body["errors"]
    assert body["detail"].startswith(f"{field}: ")


def test_an_unknown_id_in_a_filter_matches_nothing(seeded, api):
    response = api.it_admin.get("/api/v1/employees/", department="987654")
    assert (response.status_code, response.json()["count"]) == (200, 0)


def test_a_bad_field_names_the_field_and_writes_nothing(seeded, api):
    response = api.employee.post(
        "/api/v1/access-requests/", {"application": seeded.app.pk, "level": "root", "justification": "Reviews."}
    )
    assert response.status_code == 400
    assert "level" in response.json()["errors"]
    assert "has no level 'root'" in response.json()["detail"]
    response = api.employee.post("/api/v1/access-requests/", {"application": "GitHub"})
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"application", "level", "justification"}
