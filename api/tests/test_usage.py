"""POST /api/v1/usage/: last uses pushed by a script, with the same rules as an uploaded sign-in log."""

import datetime

import pytest

from accounts.models import Entitlement, UnmatchedUsage, UsageImport
from api.tests.conftest import seed_company

pytestmark = pytest.mark.django_db

WHEN = "2026-11-30T09:15:00Z"


@pytest.fixture
def company(cast):
    seed_company(cast)
    return cast


def _github(cast):
    return Entitlement.objects.get(employee=cast.employee, application=cast.app)


def test_it_admin_moves_last_use_forward_and_unmatched_pairs_are_kept(api, company):
    body = {
        "events": [
            {"application": company.app.name.upper(), "email": "EMPLOYEE@example.com", "last_used_at": WHEN},
            {"application": "Notion", "email": "employee@example.com", "last_used_at": WHEN},
        ]
    }
    answer = api.it_admin.post("/api/v1/usage/", body)
    assert answer.status_code == 201, answer.content
    assert answer.json()["entitlements_updated"] == 1
    assert answer.json()["unmatched"] == 1
    assert _github(company).last_used_at == datetime.datetime(2026, 11, 30, 9, 15, tzinfo=datetime.UTC)
    assert UnmatchedUsage.objects.filter(app_name="Notion").count() == 1

    older = {
        "events": [{"application": company.app.name, "email": "employee@example.com", "last_used_at": "2026-01-01"}]
    }
    again = api.it_admin.post("/api/v1/usage/", older)
    assert again.status_code == 201, again.content
    assert again.json()["entitlements_updated"] == 0
    assert _github(company).last_used_at == datetime.datetime(2026, 11, 30, 9, 15, tzinfo=datetime.UTC)


@pytest.mark.parametrize("audience", ["employee", "manager", "owner", "helpdesk", "auditor"])
def test_only_it_staff_who_may_import_usage_may_post(api, company, audience):
    body = {"events": [{"application": company.app.name, "email": "employee@example.com", "last_used_at": WHEN}]}
    answer = getattr(api, audience).post("/api/v1/usage/", body)
    assert answer.status_code == 403, (audience, answer.content)
    assert answer.json()["detail"]
    assert _github(company).last_used_at is None
    assert not UsageImport.objects.exists()


def test_anonymous_is_asked_to_sign_in(api, company):
    assert api.anonymous.post("/api/v1/usage/", {"events": []}).status_code == 401


@pytest.mark.parametrize(
    ("events", "words"),
    [
        ([], "at least 1"),
        ([{"application": "GitHub", "email": "employee@example.com"}], "required"),
        ([{"application": "GitHub", "email": "employee@example.com", "last_used_at": "01/03/2026"}], "format"),
        ([{"application": " ", "email": "employee@example.com", "last_used_at": WHEN}], "blank"),
        ([{"application": "GitHub", "email": "employee@example.com", "last_used_at": "2999-01-01T00:00Z"}], "future"),
    ],
)
def test_a_bad_item_refuses_the_batch_by_name_and_writes_nothing(api, company, events, words):
    good = {"application": company.app.name, "email": "employee@example.com", "last_used_at": WHEN}
    answer = api.it_admin.post("/api/v1/usage/", {"events": [good, *events]} if events else {"events": []})
    assert answer.status_code == 400, answer.content
    assert words in answer.content.decode()
    assert _github(company).last_used_at is None
    assert not UsageImport.objects.exists()


def test_a_replayed_key_records_the_batch_once(api, company):
    body = {"events": [{"application": company.app.name, "email": "employee@example.com", "last_used_at": WHEN}]}
    first = api.it_admin.post("/api/v1/usage/", body, key="usage-1")
    second = api.it_admin.post("/api/v1/usage/", body, key="usage-1")
    assert first.status_code == second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert UsageImport.objects.count() == 1
