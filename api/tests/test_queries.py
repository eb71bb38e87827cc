"""Every list answers in a constant number of queries, whatever the number of rows: measured for a scoped
audience (the manager: team, owner: approvals) and for IT, before and after adding 12 more people with
access, hardware, a license, a checklist and an access request each. Baselines pinned in BASELINES."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from api.tests.conftest import add_reports

pytestmark = pytest.mark.django_db

RESOURCES = (
    "employees",
    "departments",
    "locations",
    "roles",
    "applications",
    "entitlements",
    "access-requests",
    "hardware",
    "checkouts",
    "licenses",
    "checklist-runs",
    "tasks",
)
AUDIENCES = ("manager", "owner", "it_admin")
# Upper bounds per list (auth 2-3, permissions 2, scope helpers 1-3, count 1, rows 1, prefetch 0-1).
MAX_QUERIES = 12


def _counts(api) -> dict:
    counts = {}
    for audience in AUDIENCES:
        client = getattr(api, audience)
        client.get("/api/v1/me/")  # the token's last-use stamp is written now, not during the measure
        for resource in RESOURCES:
            with CaptureQueriesContext(connection) as queries:
                response = client.get(f"/api/v1/{resource}/")
            assert response.status_code == 200, (audience, resource, response.content)
            counts[audience, resource] = (len(queries), response.json()["count"])
    return counts


def test_lists_issue_the_same_queries_at_two_sizes(seeded, api):
    small = _counts(api)
    add_reports(seeded, 12)
    large = _counts(api)
    grew = [key for key in small if large[key][1] > small[key][1]]
    assert len(grew) >= 10, f"the larger company must show more rows in most lists: {grew}"
    changed = {key: (small[key][0], large[key][0]) for key in small if small[key][0] != large[key][0]}
    assert not changed, f"query counts changed with size: {changed}"
    too_many = {key: n for key, (n, _) in large.items() if n > MAX_QUERIES}
    assert not too_many, too_many
